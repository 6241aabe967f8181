"""The demo's pure parts: reading /metrics, ordering and describing warnings, the workdir rule, cleanup order."""

from __future__ import annotations

import orjson
import pytest

from stream.dev.demo.cleanup import Cleanup
from stream.dev.demo.metrics import WorkerProgress, parse_samples, progress_from_samples
from stream.dev.demo.run import MARKER, DemoOptions, prepare_workdir
from stream.dev.demo.summary import evidence_path, most_severe, warnings_by_rule
from stream.dev.demo.worker import DemoError

PAGE = """\
# HELP fundflow_events_consumed_total Input events accepted by the detector, per source topic.
# TYPE fundflow_events_consumed_total counter
fundflow_events_consumed_total{topic="fundflow.disbursements"} 12.0
fundflow_events_consumed_total{topic="fundflow.transfers"} 300.0
fundflow_deadlettered_total{reason="bad_amount"} 2.0
fundflow_warnings_total{rule_id="rapid-cashout",severity="high"} 4.0
fundflow_warnings_total{rule_id="odd \\"quoted\\" rule",severity="medium"} 1.0
fundflow_sink_deliveries_total{sink="clickhouse"} 5.0
fundflow_sink_deliveries_total{sink="pager"} 99.0
fundflow_sink_failures_total{sink="clickhouse"} 1.0
fundflow_processing_latency_seconds_bucket{le="+Inf"} 312.0
"""


def test_metrics_page_gives_the_counters_the_demo_follows():
    samples = parse_samples(PAGE)
    assert any(s.labels.get("rule_id") == 'odd "quoted" rule' for s in samples)
    progress = progress_from_samples(samples)
    assert progress == WorkerProgress(consumed=312, deadlettered=2, warnings=5, stored=5, sink_failures=1)
    assert progress.handled == 314


def test_an_empty_page_is_no_progress_and_a_garbled_one_is_refused():
    assert progress_from_samples(parse_samples("")) == WorkerProgress()
    with pytest.raises(ValueError):
        parse_samples("not a sample line\n")


def row(warning_id, rule_id="r", severity="high", rank=3, score=0.5, amount=100, ts=1, evidence=None, kind="k"):
    return {"warning_id": warning_id, "rule_id": rule_id, "kind": kind, "severity": severity, "severity_rank": rank,
            "score": score, "amount_minor": amount, "event_ts_ms": ts, "accounts": ["A", "B"],
            "evidence": orjson.dumps(evidence or {}).decode()}


def test_most_severe_orders_by_severity_then_score_then_amount_then_time():
    rows = [row("w-low", severity="medium", rank=2, score=1.0), row("w-a", score=0.9, amount=10),
            row("w-b", score=0.9, amount=500), row("w-c", score=0.95), row("w-d", score=0.9, amount=500, ts=0)]
    assert [r["warning_id"] for r in most_severe(rows)] == ["w-c", "w-d", "w-b"]


def test_evidence_path_shows_the_first_path_and_how_many_more():
    assert evidence_path(row("w", evidence={"paths": [["U1", "U2", "card:9"]]})) == "U1 → U2 → card:9"
    assert evidence_path(row("w", evidence={"paths": [["U1", "U2"], ["U1", "U3"], ["U1", "U4"]]})) == \
        "U1 → U2  (+2 more paths)"
    long_path = [f"U{i}" for i in range(20)]
    shown = evidence_path(row("w", evidence={"paths": [long_path]}))
    assert shown.startswith("U0 → U1") and shown.endswith("… → U19")
    assert evidence_path(row("w", evidence={"requester": "dev-1"})) == "accounts A, B"
    assert evidence_path({**row("w"), "evidence": "{not json"}) == "accounts A, B"


def test_warnings_by_rule_counts_and_keeps_the_highest_severity():
    rows = [row("1", "a", "medium", 2), row("2", "a", "high", 3), row("3", "b"), row("4", "a", "low", 1)]
    assert warnings_by_rule(rows) == [("a", "k", "high", 3), ("b", "k", "high", 1)]


def test_workdir_of_someone_else_is_never_emptied(tmp_path):
    (tmp_path / "precious.txt").write_text("keep me")
    with pytest.raises(DemoError, match="pick another --workdir"):
        prepare_workdir(tmp_path)
    assert (tmp_path / "precious.txt").read_text() == "keep me"


def test_workdir_of_a_previous_demo_is_emptied(tmp_path):
    workdir = prepare_workdir(tmp_path / "demo")
    (workdir / "chdb").mkdir()
    (workdir / "ledger.jsonl").write_text("old")
    prepare_workdir(workdir)
    assert sorted(p.name for p in workdir.iterdir()) == [MARKER]


def test_unknown_store_is_refused():
    with pytest.raises(DemoError, match="expected one of chdb, server, got 'mysql'"):
        DemoOptions(store="mysql")


def test_cleanup_stops_newest_first_once_and_survives_a_failing_stop():
    stopped = []
    cleanup = Cleanup()
    cleanup.add("broker", lambda: stopped.append("broker"))
    cleanup.add("store", lambda: (_ for _ in ()).throw(RuntimeError("stuck")))
    cleanup.add("worker", lambda: stopped.append("worker"))
    assert cleanup.run() == ["store"]
    assert stopped == ["worker", "broker"]
    assert cleanup.run() == [] and stopped == ["worker", "broker"]


def test_worker_exit_is_described_in_words():
    from stream.dev.worker_process import describe_exit
    assert describe_exit(0) == "exit code 0"
    assert describe_exit(-9) == "ended by SIGKILL"
    assert describe_exit(None) == "still running"


def test_cleanup_cannot_be_interrupted_and_restores_the_signal_handlers():
    import os
    import signal

    before = signal.getsignal(signal.SIGINT)
    stopped = []

    def stop_while_interrupted():
        os.kill(os.getpid(), signal.SIGINT)     # ignored while stopping: no KeyboardInterrupt here
        stopped.append("worker")

    cleanup = Cleanup()
    cleanup.add("broker", lambda: stopped.append("broker"))
    cleanup.add("worker", stop_while_interrupted)
    assert cleanup.run() == []
    assert stopped == ["worker", "broker"]
    assert signal.getsignal(signal.SIGINT) is before


PAGER_PAGE = PAGE + """\
fundflow_pager_decisions_total{outcome="queued"} 3.0
fundflow_pager_decisions_total{outcome="held"} 1.0
fundflow_pager_decisions_total{outcome="below_min_severity"} 1.0
fundflow_pager_decisions_total{outcome="not_for_pager"} 0.0
fundflow_pager_decisions_total{outcome="already_handled"} 0.0
fundflow_pager_queued 2.0
"""


def test_the_demo_waits_for_the_pager_to_decide_every_warning_and_send_its_queue():
    """A run is over only when the pager has read every warning raised and sent every queued page: before,
    the demo stopped the worker with pages still queued, and the page count changed from run to run."""
    waiting = progress_from_samples(parse_samples(PAGER_PAGE))
    assert (waiting.paging, waiting.pages_decided, waiting.pages_held, waiting.pages_queued) == (True, 5, 1, 2)
    assert not waiting.pages_settled                              # two pages still queued
    sent = progress_from_samples(parse_samples(PAGER_PAGE.replace("fundflow_pager_queued 2.0",
                                                                  "fundflow_pager_queued 0.0")))
    assert sent.pages_settled                     # 5 decided of 5 warnings; the held one waits by design
    behind = progress_from_samples(parse_samples(PAGER_PAGE.replace('outcome="queued"} 3.0', 'outcome="queued"} 1.0')
                                                 .replace("fundflow_pager_queued 2.0", "fundflow_pager_queued 0.0")))
    assert behind.pages_decided == 3 and not behind.pages_settled  # two warnings not read by the pager yet
    assert progress_from_samples(parse_samples(PAGE)).pages_settled     # no pager: nothing to wait for


class _ScriptedMetrics:
    """A worker as `follow` sees it: alive, with a /metrics page (a real local HTTP server) that serves `pages`
    in turn, the last one from then on."""

    def __init__(self, pages: list[str]) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        self.pages, self.served = list(pages), 0
        scripted = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's naming
                body = scripted.pages[min(scripted.served, len(scripted.pages) - 1)].encode()
                scripted.served += 1
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def alive(self) -> bool:
        return True

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"


def test_following_a_run_waits_until_the_pager_has_sent_its_queue():
    from stream.dev.demo.worker import follow

    queued = PAGER_PAGE                                                           # every warning stored, 2 queued
    sent = PAGER_PAGE.replace("fundflow_pager_queued 2.0", "fundflow_pager_queued 0.0")
    worker = _ScriptedMetrics([queued] * 6 + [sent])
    try:
        result = follow(worker, 314, timeout_s=30, sleep=lambda s: None)
    finally:
        worker.server.shutdown()
    assert result.progress.pages_queued == 0 and worker.served >= 7
