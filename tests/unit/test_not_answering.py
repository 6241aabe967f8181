"""A server that is not there is named the same way by every command, and said within seconds."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import pytest


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _fundflow(tmp_path, *args: str, **env: str) -> tuple[subprocess.CompletedProcess, float]:
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "stream.cli", *args], capture_output=True, text=True, cwd=tmp_path,
                            env={"PATH": "/usr/bin:/bin", **{f"FUNDFLOW_{k.upper()}": v for k, v in env.items()}},
                            timeout=60)
    return result, time.monotonic() - started


def test_produce_names_the_broker_and_gives_up_within_seconds(tmp_path):
    port = _closed_port()
    ledger = tmp_path / "one.jsonl"
    ledger.write_text('{"type":"transfer","event_id":"t1","ts":1772446500000,"src":"A","dst":"B","amount":"1.00",'
                      '"channel":"p2p"}\n')
    result, seconds = _fundflow(tmp_path, "produce", str(ledger), broker_url=f"kafka://127.0.0.1:{port}")
    assert result.returncode == 1
    assert f"the broker at kafka://127.0.0.1:{port} is not answering" in result.stderr, result.stderr
    assert seconds < 15


@pytest.mark.parametrize("command", [("warnings",), ("warnings", "show", "w-0123")])
def test_reading_warnings_names_the_store_the_same_way_without_its_password(tmp_path, command):
    port = _closed_port()
    result, seconds = _fundflow(tmp_path, *command, clickhouse_url=f"clickhouse://reader:s3cret@127.0.0.1:{port}/db")
    assert result.returncode == 1
    line = result.stderr.strip()
    assert f"the warning store at clickhouse://127.0.0.1:{port}/db is not answering" in line, line
    assert "s3cret" not in line and "has a worker written" not in line and "\n" not in line
    assert seconds < 15
