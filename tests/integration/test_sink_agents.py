"""Sink agents end to end: warnings produced to the warnings topic on the real broker, the real worker
(`run_worker`, with the sink agents attached by its hook) in a subprocess, a ClickHouse server of our own
and a real webhook server. ClickHouse is stopped mid-stream and the worker is restarted while it is down:
every warning still lands in ClickHouse exactly once (after FINAL) and every page is sent exactly once."""

from __future__ import annotations

import collections
import json
import os
import sys
import textwrap
import time
from pathlib import Path

from kafka import KafkaProducer

from stream.dev import devstack
from stream.sinks.store import WarningFilter
from stream.sinks.factory import open_store
from stream.model.warning import EarlyWarning, make_warning_id
from stream.worker.deadletter import headers_dict
from test_pager import SECRET, Webhook  # the recording webhook server of the pager tests
from stream.dev.worker_process import WorkerProcess
from worker_harness import read_topic, wait_for_worker

DEADLINE_S = 60.0
PARTITIONS = 2
T0 = 1_772_446_500_000

WORKER_SCRIPT = textwrap.dedent("""
    import sys
    from stream.settings import load_settings
    from stream.worker.runner import run_worker

    class NoDetector:
        watermark = None

        def process(self, event, detected_at=None):
            return []

    sys.exit(run_worker(load_settings(None), NoDetector(), loglevel="warning"))
""")


def _warning(n: int, *, severity: str = "high", notify=("pager",)) -> EarlyWarning:
    rule = f"rule-{n % 3}"
    return EarlyWarning(
        warning_id=make_warning_id(rule, "1", f"L-{n}"), rule_id=rule, rule_version="1", kind="rapid_cashout",
        severity=severity, score=0.8, subject=f"L-{n}", accounts=(f"U{n}",), loan_ids=(f"L-{n}",),
        txn_ids=(f"d-{n}",), amount=1000 + n, currency="CNY", first_ts=T0, event_ts=T0 + n * 1000,
        detected_at=T0 + n * 1000 + 5, summary=f"loan L-{n}", evidence={"n": n}, notify=notify)


def _batch(numbers) -> list[EarlyWarning]:
    """Every third warning is below the paging severity, every fifth does not name the pager."""
    return [_warning(n, severity="low" if n % 3 == 0 else "high", notify=() if n % 5 == 0 else ("pager",))
            for n in numbers]


def _pageable(warnings) -> set[str]:
    return {w.warning_id for w in warnings if w.severity == "high" and "pager" in w.notify}


class Worker:
    """The sink test's worker script, restarted between phases, on the shared worker-process controller."""

    def __init__(self, tmp_path: Path, env: dict, web_port: int) -> None:
        self.script = tmp_path / "worker.py"
        self.script.write_text(WORKER_SCRIPT)
        self.tmp_path, self.env, self.web_port, self.runs = tmp_path, env, web_port, 0
        self.process: WorkerProcess | None = None

    def start(self) -> None:
        self.runs += 1
        self.process = WorkerProcess.start(self.env, self.tmp_path / f"worker-{self.runs}.log", self.web_port,
                                           command=[sys.executable, str(self.script)], cwd=self.tmp_path)

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop(timeout_s=30)

    def log_tail(self) -> str:
        return self.process.log_tail(80) if self.process else ""

    def readyz(self) -> tuple[int, str]:
        return self.process.get("/readyz", timeout_s=5)

    def wait_for(self, condition, what: str, deadline_s: float = DEADLINE_S):
        return wait_for_worker(self.process, condition, what, deadline_s)


def _stored_ids(url: str) -> list[str] | None:
    try:
        with open_store(url) as store:
            return [r["warning_id"] for r in store.select_warnings(WarningFilter(limit=10_000))]
    except Exception:  # server down or table not created yet: not there yet
        return None


def test_warnings_reach_clickhouse_and_the_pager_once_through_outages_and_restarts(kafka_broker, tmp_path, unique,
                                                                                   free_port):
    warnings_topic, deadletter_topic = unique("it.sinks.warnings."), unique("it.sinks.deadletter.")
    topics = {"disbursements_topic": unique("it.sinks.disb."), "transfers_topic": unique("it.sinks.xfer."),
              "warnings_topic": warnings_topic, "deadletter_topic": deadletter_topic}
    kafka_broker.create_topics(list(topics.values()), partitions=PARTITIONS)

    ch_dir = tmp_path / "clickhouse"
    clickhouse = devstack.start_clickhouse(workdir=ch_dir)
    ports = {"tcp_port": clickhouse.port, "http_port": clickhouse.http_port}
    servers = [clickhouse]
    url = f"clickhouse://{clickhouse.host}:{clickhouse.port}/fundflow_sinks"
    webhook = Webhook(lambda: time.time_ns() // 1_000_000)
    env = {**os.environ, **{f"FUNDFLOW_{k.upper()}": v for k, v in topics.items()},
           "FUNDFLOW_APP_ID": unique("it-sinks-"), "FUNDFLOW_BROKER_URL": kafka_broker.url,
           "FUNDFLOW_TOPIC_PARTITIONS": str(PARTITIONS), "FUNDFLOW_WEB_PORT": str(free_port),
           "FUNDFLOW_DATA_DIR": str(tmp_path / "data"), "FUNDFLOW_BROKER_SESSION_TIMEOUT": "6s",
           "FUNDFLOW_BROKER_REBALANCE_TIMEOUT": "6s", "FUNDFLOW_CLICKHOUSE_URL": url,
           "FUNDFLOW_CLICKHOUSE_BATCH_SIZE": "4", "FUNDFLOW_CLICKHOUSE_BATCH_INTERVAL": "200ms",
           "FUNDFLOW_SINK_RETRY_INITIAL": "100ms", "FUNDFLOW_SINK_RETRY_MAX": "500ms",
           "FUNDFLOW_WEBHOOK_URL": webhook.url, "FUNDFLOW_WEBHOOK_SECRET": SECRET,
           "FUNDFLOW_PAGE_MIN_SEVERITY": "high", "FUNDFLOW_PAGE_STORM_LIMIT": "100"}
    worker = Worker(tmp_path, env, free_port)
    producer = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap, acks="all", linger_ms=5)

    def produce(warnings) -> None:
        for warning in warnings:
            producer.send(warnings_topic, key=warning.warning_id.encode(), value=warning.to_json())
        producer.flush(timeout=30)

    def paged_ids() -> list[str]:
        return [json.loads(r["body"])["warning_id"] for r in webhook.requests]

    sent: list[EarlyWarning] = []
    try:
        worker.start()
        # Phase 1: ClickHouse up. A duplicate and one message that is not a warning ride along.
        phase1 = _batch(range(12))
        produce(phase1 + phase1[:2])
        producer.send(warnings_topic, key=b"junk", value=b"{not a warning").get(timeout=30)
        sent += phase1
        worker.wait_for(lambda: set(_stored_ids(url) or ()) == {w.warning_id for w in sent}, "phase 1 rows")
        worker.wait_for(lambda: set(paged_ids()) == _pageable(sent), "phase 1 pages")
        worker.wait_for(lambda: worker.readyz()[0] == 200, "/readyz 200 with ClickHouse and the webhook up")

        # Phase 2: ClickHouse stops mid-stream; pages keep flowing; rows arrive once it is back.
        clickhouse.stop()
        phase2 = _batch(range(12, 24))
        produce(phase2)
        sent += phase2
        worker.wait_for(lambda: set(paged_ids()) == _pageable(sent), "phase 2 pages while ClickHouse is down")
        assert _stored_ids(url) is None, "ClickHouse should be down"
        worker.wait_for(lambda: worker.readyz()[0] == 503, "/readyz 503 while ClickHouse is down")
        assert "clickhouse" in worker.readyz()[1]
        clickhouse = devstack.start_clickhouse(workdir=ch_dir, **ports)
        servers.append(clickhouse)
        worker.wait_for(lambda: set(_stored_ids(url) or ()) == {w.warning_id for w in sent}, "phase 2 rows")
        worker.wait_for(lambda: worker.readyz()[0] == 200, "/readyz 200 once ClickHouse is back")
        metrics = worker.process.metrics_text()
        assert 'fundflow_sink_deliveries_total{sink="pager"}' in metrics
        assert 'fundflow_sink_failures_total{sink="clickhouse"}' in metrics

        # Phase 3: ClickHouse stops again and the worker is restarted while it is down: the batch it was
        # retrying was never committed, so the new worker reads it again and stores it.
        clickhouse.stop()
        phase3 = _batch(range(24, 32))
        produce(phase3)
        sent += phase3
        worker.wait_for(lambda: set(paged_ids()) == _pageable(sent), "phase 3 pages while ClickHouse is down")
        worker.stop()
        assert worker.process.returncode == 0, worker.log_tail()
        clickhouse = devstack.start_clickhouse(workdir=ch_dir, **ports)
        servers.append(clickhouse)
        worker.start()
        stored = worker.wait_for(
            lambda: (lambda ids: ids if ids is not None and set(ids) == {w.warning_id for w in sent} else None)(
                _stored_ids(url)), "phase 3 rows after the restart")

        # Phase 4: the webhook refuses a page for good (HTTP 400). The delivery thread dead-letters it through
        # the worker's producer, on the worker's loop, with the status and the body.
        refused = _warning(34)
        webhook.script = [(400, {}, b"unknown routing key")]
        produce([refused])
        sent.append(refused)

        def letter_reasons() -> list[str]:
            return [headers_dict(r.headers)["fundflow.reason"]
                    for r in read_topic(kafka_broker.bootstrap, deadletter_topic, partitions=PARTITIONS)]
        worker.wait_for(lambda: "pager_rejected" in letter_reasons(), "the refused page in the dead-letter topic")
        # ... acknowledged by the broker, not counted as lost.
        assert 'fundflow_publish_failures_total{record="dead_letter"} 0.0' in worker.process.metrics_text()

        # Exactly once after FINAL; every page once, signed; the junk message dead-lettered with a reason.
        stored = worker.wait_for(
            lambda: (lambda ids: ids if ids is not None and set(ids) == {w.warning_id for w in sent} else None)(
                _stored_ids(url)), "the refused page's warning stored")
        assert len(stored) == len(sent) == len(set(stored))
        with open_store(url) as store:
            assert store.count_distinct() == len(sent)
            row = store.select_warnings(WarningFilter(rule_id=sent[4].rule_id, account="U4"))[0]
            assert row["warning_id"] == sent[4].warning_id and row["amount_minor"] == 1004
        assert collections.Counter(paged_ids()) == collections.Counter(_pageable(sent))
        assert all(r["signature_ok"] for r in webhook.requests)
        letters = {headers_dict(r.headers)["fundflow.reason"]: r
                   for r in read_topic(kafka_broker.bootstrap, deadletter_topic, partitions=PARTITIONS)}
        assert sorted(letters) == ["bad_warning", "pager_rejected"]
        assert (letters["bad_warning"].key, letters["bad_warning"].value) == (b"junk", b"{not a warning")
        rejected = letters["pager_rejected"]
        assert (rejected.key, json.loads(rejected.value)["warning_id"]) == (refused.warning_id.encode(),
                                                                              refused.warning_id)
        assert "HTTP 400: unknown routing key" in headers_dict(rejected.headers)["fundflow.error"]
        assert worker.process.poll() is None
    finally:
        producer.close()
        worker.stop()
        webhook.close()
        for server in servers:
            server.stop()
