"""The worker's /metrics page: every family on prometheus_client, read at scrape time from the worker's own parts;
health pages say why a worker is not ready."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from stream.detection.detector import Detector
from stream.detection.rulebook import load_rules
from stream.worker.alignment import EventTimeAligner
from stream.worker.deadletter import Origin
from stream.worker.handler import MessageHandler
from stream.worker.health import HealthSnapshot, HealthTracker, SinkStatus, assess, healthz_page, readyz_page
from stream.worker.metrics import CONTENT_TYPE, FAMILIES, FundflowMetrics, WorkerCollector
from stream.worker.pipeline import Pipeline
from stream.worker.publisher import Publisher
from stream.worker.recovery import RebuildReport, StateRecovery

RULES = Path(__file__).resolve().parents[2] / "rules"
BASE_TS = 1_772_446_500_000
EXPECTED_TYPES = {
    "fundflow_events_consumed": "counter", "fundflow_deadlettered": "counter", "fundflow_warnings": "counter",
    "fundflow_publish_failures": "counter", "fundflow_consumer_lag": "gauge", "fundflow_watermark_seconds": "gauge",
    "fundflow_graph_nodes": "gauge", "fundflow_graph_edges": "gauge", "fundflow_lots": "gauge",
    "fundflow_sink_deliveries": "counter", "fundflow_sink_failures": "counter", "fundflow_aligner_pending": "gauge",
    "fundflow_partition_watermark_seconds": "gauge", "fundflow_rebuild_events": "gauge",
    "fundflow_rebuild_seconds": "gauge", "fundflow_rebuild_from_snapshot": "gauge",
    "fundflow_processing_latency_seconds": "histogram",
}


def _worker_parts():
    """A real detector behind a real handler, pipeline and recovery, fed a loan cashed out and a broken line."""
    detector = Detector(load_rules(str(RULES)), clock=lambda: 0)
    handler = MessageHandler(detector)
    events = [{"type": "disbursement", "event_id": "d-1", "ts": BASE_TS, "loan_id": "L-1", "account": "U1",
               "amount": "5000.00", "currency": "CNY"}]
    events += [{"type": "transfer", "event_id": f"t-{n}", "ts": BASE_TS + 60_000 * n, "src": "U1", "dst": f"U{n + 1}",
                "amount": "100.00", "currency": "CNY", "channel": "p2p"} for n in range(1, 4)]
    for offset, event in enumerate(events):
        topic = "fundflow.disbursements" if event["type"] == "disbursement" else "fundflow.transfers"
        handler.handle(json.dumps(event).encode(), key=b"U1", origin=Origin(topic, 0, offset))
    handler.handle(b"{broken", key=b"U1", origin=Origin("fundflow.transfers", 0, 99))
    metrics = FundflowMetrics()

    async def publish(outcome, wait=True):
        return None
    pipeline = Pipeline(handler, publish=publish, make_aligner=lambda: EventTimeAligner(idle_after_ms=1000,
                                                                                         clock=lambda: 0),
                        metrics=metrics)
    recovery = StateRecovery(pipeline, lambda: detector, bootstrap=["127.0.0.1:9"], group_id="g",
                             input_topics=("fundflow.disbursements", "fundflow.transfers"), span_ms=1000)
    recovery.last_report = RebuildReport(partitions=2, records=10, events=9, seconds=1.5, from_snapshot=True)
    collector = WorkerCollector(handler=handler, publisher=Publisher(None, None), pipeline=pipeline,
                                recovery=recovery, snapshots=None, rules=None, sinks=None,
                                lags=lambda: {("fundflow.transfers", 3): 42, ("fundflow.transfers", 0): 0})
    metrics.watch(collector)
    return detector, handler, metrics


def _families(text: str) -> dict:
    return {family.name: family for family in text_string_to_metric_families(text)}


def _value(families: dict, family: str, sample: str, **labels: str) -> float:
    (value,) = [s.value for s in families[family].samples if s.name == sample and s.labels == labels]
    return value


def test_every_family_is_read_from_the_worker_parts_at_scrape_time():
    detector, handler, metrics = _worker_parts()
    metrics.warnings.labels(rule_id='odd "rule"\\id\nx', severity="high").inc()
    metrics.processing_latency.observe(0.002)
    metrics.processing_latency.observe(0.3)

    families = _families(metrics.render().decode())
    assert {name: family.type for name, family in families.items()} == EXPECTED_TYPES
    assert all(FAMILIES[name][0] == family.type and FAMILIES[name][1] == family.documentation
               for name, family in families.items())
    assert all(family.documentation for family in families.values())
    assert not any(s.name.endswith("_created") for f in families.values() for s in f.samples)
    assert _value(families, "fundflow_events_consumed", "fundflow_events_consumed_total",
                  topic="fundflow.transfers") == 3
    assert _value(families, "fundflow_events_consumed", "fundflow_events_consumed_total",
                  topic="fundflow.disbursements") == 1
    (reason,) = handler.refused
    assert _value(families, "fundflow_deadlettered", "fundflow_deadlettered_total", reason=reason) == 1
    assert _value(families, "fundflow_warnings", "fundflow_warnings_total", rule_id='odd "rule"\\id\nx',
                  severity="high") == 1
    stats = detector.stats()
    assert _value(families, "fundflow_graph_nodes", "fundflow_graph_nodes") == stats["nodes"] >= 4
    assert _value(families, "fundflow_graph_edges", "fundflow_graph_edges") == stats["edges"] >= 3
    assert _value(families, "fundflow_lots", "fundflow_lots") == stats["lots"]
    assert _value(families, "fundflow_watermark_seconds", "fundflow_watermark_seconds") == detector.watermark / 1000
    assert _value(families, "fundflow_consumer_lag", "fundflow_consumer_lag", topic="fundflow.transfers",
                  partition="3") == 42
    assert _value(families, "fundflow_rebuild_events", "fundflow_rebuild_events") == 9
    assert _value(families, "fundflow_rebuild_from_snapshot", "fundflow_rebuild_from_snapshot") == 1
    hist = "fundflow_processing_latency_seconds"
    assert _value(families, hist, hist + "_bucket", le="0.0025") == 1
    assert _value(families, hist, hist + "_bucket", le="+Inf") == 2
    assert _value(families, hist, hist + "_count") == 2
    assert _value(families, hist, hist + "_sum") == pytest.approx(0.302)


def test_a_scrape_reads_what_the_worker_holds_now_and_never_double_counts():
    _, handler, metrics = _worker_parts()
    first = _families(metrics.render().decode())
    assert _families(metrics.render().decode())["fundflow_events_consumed"].samples == \
        first["fundflow_events_consumed"].samples
    handler.handle(b"[]", key=b"U1", origin=Origin("fundflow.transfers", 0, 100))
    again = _families(metrics.render().decode())
    total = sum(s.value for s in again["fundflow_deadlettered"].samples)
    assert total == 2


def test_two_workers_in_one_process_do_not_share_series():
    one, two = FundflowMetrics(), FundflowMetrics()
    one.warnings.labels(rule_id="r", severity="low").inc()
    assert "fundflow_warnings_total{" not in two.render().decode()


def test_the_metrics_page_content_type_is_what_every_prometheus_reads():
    assert CONTENT_TYPE == "text/plain; version=0.0.4; charset=utf-8"


# --- health model --------------------------------------------------------------------------------------------

def test_not_started_is_neither_live_nor_ready():
    page = healthz_page(HealthSnapshot())
    assert page.status == 503 and json.loads(page.body) == {"status": "starting"}
    assert readyz_page(HealthSnapshot()).status == 503


def test_started_is_live_but_not_ready_until_rebuilt_and_sinks_reachable():
    tracker = HealthTracker(required_sinks=("clickhouse", "pager"))
    tracker.mark_started()
    assert healthz_page(tracker.snapshot()).status == 200
    page = readyz_page(tracker.snapshot())
    assert page.status == 503
    assert json.loads(page.body)["reasons"] == ["detector state not rebuilt from the log window yet",
                                                "sink clickhouse: not checked yet", "sink pager: not checked yet"]
    tracker.mark_state_rebuilt()
    tracker.set_sink("clickhouse", True)
    tracker.set_sink("pager", False, "connection refused by hooks.example:443")
    body = json.loads(readyz_page(tracker.snapshot()).body)
    assert body["reasons"] == ["sink pager: unreachable (connection refused by hooks.example:443)"]
    assert body["sinks"]["pager"] == {"reachable": False, "detail": "connection refused by hooks.example:443"}
    tracker.set_sink("pager", True)
    page = readyz_page(tracker.snapshot())
    assert page.status == 200 and json.loads(page.body)["status"] == "ready"
    assert healthz_page(tracker.snapshot()).status == 200


def test_rebuild_detail_is_shown_and_live_does_not_depend_on_readiness():
    snapshot = HealthSnapshot(started=True, rebuild_detail="fundflow.transfers[2] 5000 behind",
                              sinks=(SinkStatus("clickhouse", False, "timeout"),))
    readiness = assess(snapshot)
    assert readiness.live and not readiness.ready
    assert readiness.reasons == ("detector state not rebuilt from the log window yet: fundflow.transfers[2] "
                                 "5000 behind", "sink clickhouse: unreachable (timeout)")
    assert healthz_page(snapshot).status == 200
