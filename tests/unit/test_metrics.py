"""Metrics render exactly in the Prometheus text format 0.0.4; health pages say why a worker is not ready."""

from __future__ import annotations

import json
import math
import re
import threading

import pytest

from stream.worker.health import (HealthSnapshot, HealthTracker, SinkStatus, assess, healthz_page, metrics_page,
                                  readyz_page)
from stream.worker.metrics import (CONTENT_TYPE, Counter, FundflowMetrics, Gauge, Histogram, Registry,
                                   escape_label_value, format_value)


# --- a small parser of the exposition format, independent of the renderer -------------------------------

_SAMPLE = re.compile(r'^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>.*)\})? (?P<value>\S+)$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)')


def _unescape(text: str) -> str:
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\":
            out.append({"\\": "\\", '"': '"', "n": "\n"}[text[i + 1]])
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def parse_exposition(text: str):
    """-> (types {family: type}, helps {family: text}, samples [(name, {label: value}, float)])."""
    assert text.endswith("\n"), "the exposition must end with a line feed"
    types, helps, samples = {}, {}, []
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            assert name not in types, f"second TYPE line for {name}"
            types[name] = kind
        elif line.startswith("# HELP "):
            _, _, name, doc = line.split(" ", 3)
            helps[name] = doc.replace("\\n", "\n").replace("\\\\", "\\")
        else:
            match = _SAMPLE.match(line)
            assert match, f"not a sample line: {line!r}"
            labels, rest = {}, match["labels"] or ""
            while rest:
                label = _LABEL.match(rest)
                assert label, f"bad labels in {line!r}"
                labels[label[1]] = _unescape(label[2])
                rest = rest[label.end():]
            value = {"+Inf": math.inf, "-Inf": -math.inf}.get(match["value"])
            samples.append((match["name"], labels, float(match["value"]) if value is None else value))
    return types, helps, samples


# --- golden renderings ----------------------------------------------------------------------------------

def test_counter_golden():
    counter = Counter("fundflow_events_consumed_total", "Input events accepted.")
    counter.inc()
    counter.inc(2)
    assert counter.render() == ("# HELP fundflow_events_consumed_total Input events accepted.\n"
                                "# TYPE fundflow_events_consumed_total counter\n"
                                "fundflow_events_consumed_total 3.0\n")


def test_labelled_gauge_golden_sorted_by_label_values():
    gauge = Gauge("fundflow_consumer_lag", "Lag.", ["topic", "partition"])
    gauge.set(7, topic="fundflow.transfers", partition=1)
    gauge.set(0, topic="fundflow.disbursements", partition=0)
    gauge.set(12.5, topic="fundflow.transfers", partition=0)
    assert gauge.render() == ("# HELP fundflow_consumer_lag Lag.\n"
                              "# TYPE fundflow_consumer_lag gauge\n"
                              'fundflow_consumer_lag{topic="fundflow.disbursements",partition="0"} 0.0\n'
                              'fundflow_consumer_lag{topic="fundflow.transfers",partition="0"} 12.5\n'
                              'fundflow_consumer_lag{topic="fundflow.transfers",partition="1"} 7.0\n')


def test_histogram_golden_cumulative_buckets_sum_count():
    histogram = Histogram("fundflow_processing_latency_seconds", "Latency.", buckets=[0.01, 0.1, 1])
    for value in (0.005, 0.01, 0.05, 0.5, 3.0):
        histogram.observe(value)
    assert histogram.render() == ("# HELP fundflow_processing_latency_seconds Latency.\n"
                                  "# TYPE fundflow_processing_latency_seconds histogram\n"
                                  'fundflow_processing_latency_seconds_bucket{le="0.01"} 2.0\n'
                                  'fundflow_processing_latency_seconds_bucket{le="0.1"} 3.0\n'
                                  'fundflow_processing_latency_seconds_bucket{le="1.0"} 4.0\n'
                                  'fundflow_processing_latency_seconds_bucket{le="+Inf"} 5.0\n'
                                  "fundflow_processing_latency_seconds_sum 3.565\n"
                                  "fundflow_processing_latency_seconds_count 5.0\n")


def test_labelled_histogram_puts_le_last_and_an_unobserved_one_renders_only_help_and_type():
    histogram = Histogram("h_seconds", "H.", ["sink"], buckets=[1])
    assert histogram.render() == "# HELP h_seconds H.\n# TYPE h_seconds histogram\n"
    histogram.observe(2, sink="pager")
    assert histogram.render().splitlines()[2:] == ['h_seconds_bucket{sink="pager",le="1.0"} 0.0',
                                                   'h_seconds_bucket{sink="pager",le="+Inf"} 1.0',
                                                   'h_seconds_sum{sink="pager"} 2.0',
                                                   'h_seconds_count{sink="pager"} 1.0']


def test_label_values_and_help_are_escaped():
    assert escape_label_value('a\\b"c\nd') == 'a\\\\b\\"c\\nd'
    gauge = Gauge("g", 'Help with a \\ backslash,\na newline and "quotes".', ["account"])
    gauge.set(1, account='U"1\\\n')
    lines = gauge.render().splitlines()
    assert lines[0] == '# HELP g Help with a \\\\ backslash,\\na newline and "quotes".'
    assert lines[2] == 'g{account="U\\"1\\\\\\n"} 1.0'


def test_special_values_spelled_as_prometheus_reads_them():
    assert [format_value(v) for v in (math.inf, -math.inf, math.nan, 3, 0.25, 1e20)] == \
        ["+Inf", "-Inf", "NaN", "3.0", "0.25", "1e+20"]


# --- parse-back --------------------------------------------------------------------------------------------

def test_fundflow_metrics_parse_back_with_every_value():
    metrics = FundflowMetrics.create()
    metrics.events_consumed.inc(5, topic="fundflow.transfers")
    metrics.deadlettered.inc(reason="bad_amount")
    metrics.warnings.inc(rule_id='odd "rule"\\id', severity="high")
    metrics.sink_deliveries.inc(3, sink="clickhouse")
    metrics.sink_failures.inc(sink="pager")
    metrics.sink_retries.inc(2, sink="pager")
    metrics.graph_nodes.set(1200)
    metrics.graph_edges.set(3400)
    metrics.lots.set(17)
    metrics.watermark.set(1_772_446_500.0)
    metrics.consumer_lag.set(42, topic="fundflow.transfers", partition=3)
    metrics.processing_latency.observe(0.002)
    metrics.processing_latency.observe(0.3)

    types, helps, samples = parse_exposition(metrics.render())
    assert types == {
        "fundflow_events_consumed_total": "counter", "fundflow_deadlettered_total": "counter",
        "fundflow_warnings_total": "counter", "fundflow_sink_deliveries_total": "counter",
        "fundflow_sink_failures_total": "counter", "fundflow_sink_retries_total": "counter",
        "fundflow_graph_nodes": "gauge", "fundflow_graph_edges": "gauge", "fundflow_lots": "gauge",
        "fundflow_watermark_seconds": "gauge", "fundflow_consumer_lag": "gauge",
        "fundflow_processing_latency_seconds": "histogram", "fundflow_aligner_pending": "gauge",
        "fundflow_rule_reloads_total": "counter", "fundflow_rebuild_events": "gauge",
        "fundflow_rebuild_seconds": "gauge", "fundflow_pager_queued": "gauge",
        "fundflow_pager_oldest_queued_seconds": "gauge", "fundflow_publish_failures_total": "counter",
        "fundflow_snapshot_age_seconds": "gauge", "fundflow_snapshot_bytes": "gauge",
        "fundflow_rebuild_from_snapshot": "gauge", "fundflow_partition_watermark_seconds": "gauge"}
    assert set(helps) == set(types) and all(helps.values())
    by_key = {(name, tuple(sorted(labels.items()))): value for name, labels, value in samples}
    assert by_key[("fundflow_events_consumed_total", (("topic", "fundflow.transfers"),))] == 5
    assert by_key[("fundflow_warnings_total", (("rule_id", 'odd "rule"\\id'), ("severity", "high")))] == 1
    assert by_key[("fundflow_consumer_lag", (("partition", "3"), ("topic", "fundflow.transfers")))] == 42
    assert by_key[("fundflow_watermark_seconds", ())] == 1_772_446_500.0
    assert by_key[("fundflow_processing_latency_seconds_bucket", (("le", "0.0025"),))] == 1
    assert by_key[("fundflow_processing_latency_seconds_bucket", (("le", "+Inf"),))] == 2
    assert by_key[("fundflow_processing_latency_seconds_count", ())] == 2
    assert by_key[("fundflow_processing_latency_seconds_sum", ())] == pytest.approx(0.302)
    buckets = [v for n, labels, v in samples if n == "fundflow_processing_latency_seconds_bucket"]
    assert buckets == sorted(buckets), "bucket counts must be cumulative"
    # every sample belongs to a family announced before it
    for name, _, _ in samples:
        family = re.sub(r"_(bucket|sum|count)$", "", name) if name not in types else name
        assert family in types, name


def test_metrics_page_has_the_prometheus_content_type():
    metrics = FundflowMetrics.create()
    page = metrics_page(metrics.registry)
    assert page.status == 200 and page.content_type == CONTENT_TYPE == "text/plain; version=0.0.4; charset=utf-8"
    assert "# TYPE fundflow_lots gauge\nfundflow_lots 0.0\n" in page.body


# --- refusals and concurrency ------------------------------------------------------------------------------

@pytest.mark.parametrize("make,message", [
    (lambda: Counter("events", "x"), "must end in '_total'"),
    (lambda: Gauge("bad-name", "x"), "metric name must match"),
    (lambda: Gauge("g", "x", ["__reserved"]), "label name must match"),
    (lambda: Gauge("g", "x", ["a", "a"]), "duplicated label names"),
    (lambda: Histogram("h", "x", ["le"]), "reserved for histograms"),
    (lambda: Histogram("h", "x", buckets=[1, 0.5]), "distinct and increasing"),
    (lambda: Gauge("g", " "), "help text must not be empty"),
])
def test_bad_definitions_are_refused_with_the_reason(make, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        make()


def test_wrong_labels_and_decreasing_counters_are_refused():
    counter = Counter("c_total", "C.", ["sink"])
    with pytest.raises(ValueError, match=r"expected labels \['sink'\], got \['topic'\]"):
        counter.inc(topic="x")
    with pytest.raises(ValueError, match="can only go up"):
        counter.inc(-1, sink="pager")
    counter.advance_to(10, sink="pager")
    counter.advance_to(10, sink="pager")
    with pytest.raises(ValueError, match='c_total{sink="pager"} can only go up: at 10.0, asked to go to 9'):
        counter.advance_to(9, sink="pager")
    assert counter.value(sink="pager") == 10


def test_registry_refuses_duplicates_and_runs_collectors_before_rendering():
    registry = Registry()
    gauge = registry.register(Gauge("g", "G."))
    with pytest.raises(ValueError, match="already registered"):
        registry.register(Gauge("g", "again"))
    source = {"size": 0}
    registry.add_collector(lambda: gauge.set(source["size"]))
    source["size"] = 99
    assert registry.render().endswith("g 99.0\n")


def test_removed_label_combination_stops_being_exported():
    gauge = Gauge("lag", "L.", ["partition"])
    gauge.set(5, partition=0)
    gauge.set(6, partition=1)
    gauge.remove(partition=0)
    assert 'partition="0"' not in gauge.render() and gauge.value(partition=1) == 6


def test_concurrent_increments_are_not_lost():
    counter = Counter("c_total", "C.", ["t"])
    histogram = Histogram("h_seconds", "H.", buckets=[1])

    def work():
        for _ in range(2000):
            counter.inc(t="x")
            histogram.observe(0.5)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert counter.value(t="x") == 8000 and histogram.value() == 8000


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


# --- metrics fed from the worker's own objects ------------------------------------------------------------------

def test_scrape_copies_handler_counters_and_detector_sizes_from_the_real_detector():
    import json as _json
    from pathlib import Path
    from types import SimpleNamespace

    from stream.detection.detector import Detector
    from stream.rules.loader import load_rules
    from stream.worker.deadletter import Origin
    from stream.worker.handler import MessageHandler
    from stream.worker.metrics import _copy_handler_counters

    rules_dir = Path(__file__).resolve().parents[2] / "rules"
    detector = Detector(load_rules(str(rules_dir)), clock=lambda: 0)
    handler = MessageHandler(detector)
    base_ts = 1_772_446_500_000
    events = [{"type": "disbursement", "event_id": "d-1", "ts": base_ts, "loan_id": "L-1", "account": "U1",
               "amount": "5000.00", "currency": "CNY"}]
    events += [{"type": "transfer", "event_id": f"t-{n}", "ts": base_ts + 60_000 * n, "src": "U1", "dst": f"U{n + 1}",
                "amount": "100.00", "currency": "CNY", "channel": "p2p"} for n in range(1, 4)]
    for offset, event in enumerate(events):
        topic = "fundflow.disbursements" if event["type"] == "disbursement" else "fundflow.transfers"
        handler.handle(_json.dumps(event).encode(), key=b"U1", origin=Origin(topic, 0, offset))
    handler.handle(b"{broken", key=b"U1", origin=Origin("fundflow.transfers", 0, 99))

    metrics = FundflowMetrics.create()
    app = SimpleNamespace(fundflow_handler=handler)
    _copy_handler_counters(app, metrics)
    _copy_handler_counters(app, metrics)   # scraping twice never double counts
    stats = detector.stats()
    assert metrics.events_consumed.value(topic="fundflow.transfers") == 3
    assert metrics.events_consumed.value(topic="fundflow.disbursements") == 1
    assert sum(handler.refused.values()) == 1
    (reason,) = handler.refused
    assert metrics.deadlettered.value(reason=reason) == 1
    assert metrics.graph_nodes.value() == stats["nodes"] >= 4
    assert metrics.graph_edges.value() == stats["edges"] >= 3
    assert metrics.lots.value() == stats["lots"]
    assert metrics.watermark.value() == detector.watermark / 1000
