"""`fundflow demo` end to end: the real command in a subprocess (its own tansu broker, chDB store, webhook
receiver and `fundflow worker`), then its printed summary checked against the store it leaves behind and
against an offline replay of the same ledger. A second test interrupts it and checks nothing is left running."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from stream.detection.detector import Detector
from stream.offline.replay import replay_lines
from stream.detection.rulebook import load_rules
from stream.settings import load_settings
from stream.simulate.params import PLANTED_KINDS
from stream.model.warning import SEVERITY_RANK
from stream.sinks.schema import COLUMNS
from stream.sinks.store import WarningFilter
from stream.sinks.factory import open_store

REPO = Path(__file__).resolve().parents[2]
SMALL = ["--events-per-day", "1500", "--days", "3", "--instances", "2", "--seed", "11", "--no-progress"]
# Slow enough that a loaded machine still keeps the worker within minutes of event time of the input.
PACED = ["--rate", "1000"]
TYPOLOGIES = len(PLANTED_KINDS)
RUN_TIMEOUT_S = 150
SECTIONS = ("== Processed", "== Warnings by rule (from the store)", "== The 3 most severe warnings",
            "== Quality against the planted truth", "== Pages", "== Where the warnings are")


def run_demo(workdir: Path, *extra: str, timeout: float = RUN_TIMEOUT_S) -> subprocess.CompletedProcess:
    command = [sys.executable, "-c", "import sys; from stream.cli import main; sys.exit(main(sys.argv[1:]))",
               "demo", "--workdir", str(workdir), *SMALL, *extra]
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUNDFLOW_")}
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


def number(text: str) -> int:
    return int(text.replace(",", ""))


def offline_warning_ids(ledger: Path) -> set[str]:
    """What `fundflow replay` finds in the same ledger with the same rules: the worker must find exactly that."""
    settings = load_settings(env={})
    detector = Detector(load_rules(REPO / "rules"), window_ms=settings.window, lateness_ms=settings.allowed_lateness)
    found: set[str] = set()
    with open(ledger, "rb") as lines:
        replay_lines(lines, detector, lambda w: found.add(w.warning_id))
    return found


def test_demo_prints_the_summary_of_what_it_stored(tmp_path):
    workdir = tmp_path / "demo"
    started = time.monotonic()
    result = run_demo(workdir, *PACED)
    elapsed = time.monotonic() - started
    out = result.stdout
    assert result.returncode == 0, f"stdout:\n{out}\nstderr:\n{result.stderr[-3000:]}"
    for section in SECTIONS:
        assert section in out, f"missing {section!r} in:\n{out}"

    ledger_events = sum(1 for line in (workdir / "ledger.jsonl").read_bytes().splitlines() if line.strip())
    processed = re.search(r"^events\s+([\d,]+) of ([\d,]+) consumed by the worker in ([\d.]+) s \(([\d,]+) events/s",
                          out, re.M)
    assert processed, out
    assert number(processed[1]) == number(processed[2]) == ledger_events
    assert float(processed[3]) > 0 and number(processed[4]) > 0
    assert re.search(r"^caught up\s+[\d.]+ s after the last event was sent$", out, re.M), out
    assert re.search(r"^dead letters\s+0$", out, re.M), out
    counts = re.search(r"^warnings\s+([\d,]+) raised, ([\d,]+) in the store", out, re.M)
    assert counts, out
    raised, printed_stored = number(counts[1]), number(counts[2])
    assert printed_stored == raised > 0

    by_rule_block = out.split("== Warnings by rule (from the store)\n", 1)[1].split("\n\n", 1)[0]
    printed_by_rule = {m[1]: int(m[4]) for m in re.finditer(r"^(\S+)\s+(\S+)\s+(\S+)\s+(\d+)$", by_rule_block, re.M)}
    assert sum(printed_by_rule.values()) == printed_stored

    severe = re.findall(r"^\d\. \[(\w+)\] (\S+)\s+subject .*\n   .+\n   evidence: (.+)\n   transactions: .*"
                        r"warning_id (w-[0-9a-f]+)$", out, re.M)
    assert len(severe) == min(3, printed_stored), out
    assert all(path.strip() for _, _, path, _ in severe)

    all_row = re.search(r"^ALL\s+(\d+)\s+(\d+)\s+([\d.]+)%", out, re.M)
    assert all_row, out
    planted, detected, recall = int(all_row[1]), int(all_row[2]), float(all_row[3])
    assert planted == TYPOLOGIES * 2
    assert recall == pytest.approx(100 * detected / planted, abs=0.05)
    precision = re.search(r"^precision ([\d.]+)%: of (\d+) warnings, (\d+) on planted", out, re.M)
    assert precision and int(precision[2]) == printed_stored
    assert float(precision[1]) == pytest.approx(100 * int(precision[3]) / int(precision[2]), abs=0.05)

    pages = re.search(r"^webhook received (\d+) pages?(?:, (\d+) of them storm summaries)?"
                      r"(?:, (\d+) signatures verified)?", out, re.M)
    assert pages, out
    assert int(pages[3] or 0) == int(pages[1])       # every page carried a valid signature
    held = re.search(r"^storm control held (\d+) warnings?", out, re.M)

    store_url = f"chdb://{workdir / 'chdb'}"
    assert f"FUNDFLOW_CLICKHOUSE_URL={store_url} " in out and " warnings --severity high" in out

    # The store the demo left behind holds exactly what it printed, and exactly what an offline replay finds.
    with open_store(store_url) as store:
        rows = store.select_warnings(WarningFilter(limit=100_000))
        assert store.count_distinct() == printed_stored
    assert len(rows) == printed_stored
    assert all(set(row) == set(COLUMNS) for row in rows)
    assert Counter(row["rule_id"] for row in rows) == Counter(printed_by_rule)
    stored_ids = {row["warning_id"] for row in rows}
    assert {warning_id for *_, warning_id in severe} <= stored_ids
    top = max(rows, key=lambda row: (row["severity_rank"], row["score"]))
    assert severe[0][0] == top["severity"]
    assert stored_ids == offline_warning_ids(workdir / "ledger.jsonl")

    # Every warning that pages was either sent on its own before the demo stopped or held by storm control:
    # the demo waits for the pager's queue, not only for the store.
    notify = {rule.id: rule.notify for rule in load_rules(REPO / "rules").rules}
    paging = sum(1 for row in rows if "pager" in notify[row["rule_id"]]
                 and row["severity_rank"] >= SEVERITY_RANK[load_settings(env={}).page_min_severity])
    own_pages = int(pages[1]) - int(pages[2] or 0)
    assert paging > 0 and own_pages + int(held[1] if held else 0) == paging, out

    assert elapsed < 90, f"the small demo took {elapsed:.0f} s"


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_ctrl_c_stops_every_process_the_demo_started(tmp_path):
    command = [sys.executable, "-c", "import sys; from stream.cli import main; sys.exit(main(sys.argv[1:]))",
               "demo", "--workdir", str(tmp_path / "demo"), *SMALL, "--rate", "200"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUNDFLOW_")}
    demo = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen, worker_pid, broker_port = [], None, None
    try:
        deadline = time.monotonic() + 60
        while worker_pid is None and time.monotonic() < deadline:
            line = demo.stdout.readline()
            if not line:
                break
            seen.append(line)
            if match := re.search(r"broker: tansu \(Kafka API\) on 127\.0\.0\.1:(\d+)", line):
                broker_port = int(match[1])
            if match := re.search(r"`fundflow worker` started \(pid (\d+)", line):
                worker_pid = int(match[1])
        assert worker_pid and broker_port, "".join(seen)
        assert _alive(worker_pid) and _listening(broker_port)
        demo.send_signal(signal.SIGINT)
        rest, errors = demo.communicate(timeout=60)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
    assert demo.returncode == 130, "".join(seen) + rest + errors
    assert "interrupted" in errors
    assert not _alive(worker_pid)
    assert not _listening(broker_port)


def test_webhook_receiver_records_signed_pages_and_refuses_forged_ones():
    import urllib.error
    import urllib.request

    from stream.dev.demo.webhook import WebhookReceiver
    from stream.sinks.payloads import signed_headers

    secret = "demo-secret"
    body = b'{"warning_id":"w-1","severity":"high","rule_id":"rapid-cashout"}'
    storm = b'{"type":"storm_summary","severity":"critical","count":3}'
    with WebhookReceiver(secret) as hook:
        for payload in (body, storm):
            request = urllib.request.Request(hook.url, data=payload, method="POST",
                                             headers=signed_headers(secret, int(time.time() * 1000), payload))
            with urllib.request.urlopen(request, timeout=5) as response:
                assert response.status == 200
        forged = urllib.request.Request(hook.url, data=body, method="POST",
                                        headers=signed_headers("not-the-secret", int(time.time() * 1000), body))
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(forged, timeout=5)
        assert refused.value.code == 401
        log = hook.log
    assert log.received == 2 and log.signatures_ok() == 2 and log.refused == 1
    assert log.by_kind() == Counter({"warning": 1, "storm_summary": 1})
    assert [page.severity for page in log.pages] == ["high", "critical"]
    assert log.pages[0].body == body
