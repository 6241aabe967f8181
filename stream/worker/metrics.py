"""The worker's Prometheus metrics, every name, type, label and help text in one place, on prometheus_client.

Two sorts, on one registry per worker (never the process-global default: two workers in one test process, or
one worker rebuilt, must not share series):
- **Updated as things happen:** warnings raised and their latency, which the pipeline observes itself.
- **Read at scrape time** by `WorkerCollector` from the objects that already keep them: the message handler's
  counts, the sinks' delivery counts, the detector's size, the consumer's offsets, the last rebuild and
  snapshot. Copying them on a timer would export values up to a tick old and race a rebuild; reading them at
  the scrape exports exactly what the worker holds.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping

import prometheus_client
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest

from ..sinks.pager import DECISIONS

# The `_created` series prometheus_client adds to counters and histograms by default repeat the process
# start time under every label set; nothing here reads them, and they double the scrape.
prometheus_client.disable_created_metrics()

# What generate_latest writes, in the spelling every Prometheus release reads (1.0.0 only names the same text).
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4

# Seconds from an event's arrival to its warnings being acknowledged by the broker: a few ms normally,
# seconds when the broker or a rebuild is slow. Prometheus client defaults, plus the tail we page on.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

Lags = Callable[[], Mapping[tuple[str, int], int]]

# Every family the worker exports: name (a counter's samples add `_total`), type, help text, labels.
FAMILIES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "fundflow_warnings": (
        "counter", "Early warnings raised, per rule and severity.", ("rule_id", "severity")),
    "fundflow_processing_latency_seconds": (
        "histogram", "Seconds from reading an event to its warnings being stored in the warnings topic.", ()),
    "fundflow_events_consumed": (
        "counter", "Input events accepted by the detector, per source topic.", ("topic",)),
    "fundflow_deadlettered": (
        "counter", "Messages sent to the dead-letter topic, per reason code.", ("reason",)),
    "fundflow_publish_failures": (
        "counter", "Records the broker refused for good, per kind: a warning (then dead-lettered) or a dead "
                   "letter (then only logged).", ("record",)),
    "fundflow_consumer_lag": (
        "gauge", "Messages between the consumer position and the end of the log, per input topic-partition.",
        ("topic", "partition")),
    "fundflow_watermark_seconds": (
        "gauge", "Event-time watermark of the detector, as Unix epoch seconds.", ()),
    "fundflow_graph_nodes": ("gauge", "Accounts in the rolling transaction graph.", ()),
    "fundflow_graph_edges": ("gauge", "Transfers in the rolling transaction graph.", ()),
    "fundflow_lots": ("gauge", "Disbursed amounts (lots) the fund tracer still follows.", ()),
    "fundflow_sink_deliveries": (
        "counter", "Warnings a sink delivered (duplicates included), per sink.", ("sink",)),
    "fundflow_sink_failures": (
        "counter", "Failed delivery attempts, per sink (each is retried, or dead-lettered when it cannot "
                   "succeed).", ("sink",)),
    "fundflow_pager_decisions": (
        "counter", "Warnings the pager agent read from the outbox, per decision: queued (to be paged), held (storm "
                   "control: in its minute's summary page), below_min_severity, not_for_pager, already_handled.",
        ("outcome",)),
    "fundflow_pager_queued": ("gauge", "Pages in the durable page queue, waiting for the webhook.", ()),
    "fundflow_pager_oldest_queued_seconds": (
        "gauge", "Seconds the oldest queued page has waited for the webhook.", ()),
    "fundflow_aligner_pending": (
        "gauge", "Valid events held by the event-time aligner, waiting for the other input partitions to catch "
                 "up.", ()),
    "fundflow_partition_watermark_seconds": (
        "gauge", "Newest event time read from each input partition, as Unix epoch seconds: a partition far "
                 "behind the others holds their events back.", ("topic", "partition")),
    "fundflow_rule_reloads": (
        "counter", "Changes of the rules directory seen by the worker, by result (ok: swapped in; failed: "
                   "refused, the previous rules keep running).", ("result",)),
    "fundflow_indicator_reloads": (
        "counter", "Changes of indicators_dir (the local indicator set) seen by the worker, by result (ok: swapped "
                   "in; failed: refused, the previous set keeps running).", ("result",)),
    "fundflow_indicators": ("gauge", "Indicators of the members' feeds in the running indicator set.", ()),
    "fundflow_rebuild_events": ("gauge", "Events replayed from the input log by the last state rebuild.", ()),
    "fundflow_rebuild_seconds": ("gauge", "Duration of the last state rebuild from the input log.", ()),
    "fundflow_rebuild_from_snapshot": (
        "gauge", "1 when the last rebuild started from a snapshot (and replayed only the log after it), 0 when "
                 "it replayed the whole window.", ()),
    "fundflow_snapshot_age_seconds": (
        "gauge", "Seconds since the last snapshot of the detection state was written (absent before the first "
                 "one).", ()),
    "fundflow_snapshot_bytes": ("gauge", "Size of the last snapshot written.", ()),
    "fundflow_evidence_index_events": (
        "gauge", "Events whose original bytes the evidence index holds for the warnings they may cause.", ()),
    "fundflow_evidence_records": (
        "counter", "Evidence chain records written by this worker's ClickHouse sink.", ()),
    "fundflow_evidence_checkpoints": (
        "counter", "Signed evidence chain checkpoints written by this worker's ClickHouse sink.", ()),
}


def _family(name: str, value: float | None = None) -> Metric:
    """An empty family (add samples) or, with `value`, an unlabelled gauge, as FAMILIES defines it."""
    kind, documentation, labels = FAMILIES[name]
    family = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
    if value is not None:
        return family(name, documentation, value=value)
    return family(name, documentation, labels=list(labels))


class LatencyHistogram:
    """A histogram kept as plain counts and exported at scrape time, observed once for all the events of a batch
    that share a latency. prometheus_client's Histogram takes a lock and walks the buckets per observation, about
    2 µs per event on the worker's hot path; every observation here comes from the worker's event loop, as does
    every scrape (the web server runs on it), so no lock is needed."""

    def __init__(self, name: str, buckets: tuple[float, ...]) -> None:
        self.name = name
        self.bounds = (*buckets, float("inf"))
        self.counts = [0] * len(self.bounds)
        self.total = 0.0

    def observe(self, seconds: float, count: int = 1) -> None:
        self.counts[bisect_left(self.bounds, seconds)] += count
        self.total += seconds * count

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        cumulative, buckets = 0, []
        for bound, count in zip(self.bounds, self.counts):
            cumulative += count
            buckets.append((floatToGoString(bound), cumulative))
        yield HistogramMetricFamily(self.name, FAMILIES[self.name][1], buckets=buckets, sum_value=self.total)


class FundflowMetrics:
    """The registry of one worker and the metrics code updates directly; the rest comes from `watch`."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.warnings = Counter("fundflow_warnings", FAMILIES["fundflow_warnings"][1],
                                FAMILIES["fundflow_warnings"][2], registry=self.registry)
        self.processing_latency = LatencyHistogram("fundflow_processing_latency_seconds", LATENCY_BUCKETS)
        self.registry.register(self.processing_latency)

    def watch(self, collector: "WorkerCollector") -> None:
        self.registry.register(collector)

    def render(self) -> bytes:
        return generate_latest(self.registry)


@dataclass(eq=False)      # registered by identity: prometheus_client keys collectors in a dict
class WorkerCollector:
    """Everything the worker exports that another object already counts, read when Prometheus scrapes.

    Its collaborators are handed in by the composition (`stream.worker.compose`); `sinks` and `rules` are
    None when the worker runs without them (tests of the input side, a detector given by the caller).
    """

    handler: Any                      # MessageHandler: accepted / refused counts and the detector
    publisher: Any                    # Publisher: records the broker refused for good
    pipeline: Any                     # Pipeline: aligner backlog and per-partition event time
    recovery: Any                     # StateRecovery: the last rebuild
    snapshots: Any | None             # SnapshotWriter: the last snapshot written
    rules: Any | None                 # RuleReloader: reloads that worked and failed
    sinks: Any | None                 # SinkAgents: ClickHouse writer and pager
    lags: Lags                        # messages behind per input topic-partition
    indicators: Any | None = None     # IndicatorReloader: reloads and the running set (None: no sharing)

    def describe(self) -> list[Metric]:
        return []        # series appear with their values: a gauge absent until known stays absent

    def collect(self) -> Iterator[Metric]:
        yield from self._input()
        yield from self._detector()
        yield from self._sinks()
        yield from self._worker_state()

    def _input(self) -> Iterator[Metric]:
        consumed = _family("fundflow_events_consumed")
        for topic, count in sorted(dict(self.handler.accepted).items()):
            consumed.add_metric([topic], count)
        yield consumed
        refused = dict(self.handler.refused)
        if self.publisher.unpublishable_warnings:
            refused["warning_unpublishable"] = self.publisher.unpublishable_warnings
        if self.sinks is not None and self.sinks.bad_warnings:
            refused["bad_warning"] = self.sinks.bad_warnings
        dead = _family("fundflow_deadlettered")
        for reason, count in sorted(refused.items()):
            dead.add_metric([reason], count)
        yield dead
        failures = _family("fundflow_publish_failures")
        failures.add_metric(["warning"], self.publisher.unpublishable_warnings)
        failures.add_metric(["dead_letter"], self.publisher.unpublishable_dead_letters)
        yield failures
        lag = _family("fundflow_consumer_lag")
        for (topic, partition), behind in sorted(self.lags().items()):
            lag.add_metric([topic, str(partition)], behind)
        yield lag

    def _detector(self) -> Iterator[Metric]:
        detector = self.handler.detector
        watermark = getattr(detector, "watermark", None)
        if isinstance(watermark, int):
            yield _family("fundflow_watermark_seconds", watermark / 1000)
        stats = detector.stats() if callable(getattr(detector, "stats", None)) else {}
        for name, key in (("fundflow_graph_nodes", "nodes"), ("fundflow_graph_edges", "edges"),
                          ("fundflow_lots", "lots")):
            value = stats.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                yield _family(name, value)

    def _sinks(self) -> Iterator[Metric]:
        deliveries = _family("fundflow_sink_deliveries")
        failures = _family("fundflow_sink_failures")
        if self.sinks is not None:
            writer, pager = self.sinks.clickhouse, self.sinks.pager
            deliveries.add_metric(["clickhouse"], writer.rows_written)
            failures.add_metric(["clickhouse"], writer.failed_attempts)
            if pager is not None:
                deliveries.add_metric(["pager"], pager.delivered)
                failures.add_metric(["pager"], pager.failed_attempts)
        yield deliveries
        yield failures
        chain = self.sinks.chain if self.sinks is not None else None
        if chain is not None:
            records = _family("fundflow_evidence_records")
            records.add_metric([], chain.records_written)
            yield records
            checkpoints = _family("fundflow_evidence_checkpoints")
            checkpoints.add_metric([], chain.checkpoints_written)
            yield checkpoints
        index = getattr(self.handler, "evidence", None)
        if index is not None:
            yield _family("fundflow_evidence_index_events", len(index))
        pager = self.sinks.pager if self.sinks is not None else None
        if pager is not None:
            decisions = _family("fundflow_pager_decisions")
            for outcome in DECISIONS:
                decisions.add_metric([outcome], pager.counts.get(outcome, 0))
            yield decisions
            queued, oldest_s = pager.queue_stats()
            yield _family("fundflow_pager_queued", queued)
            yield _family("fundflow_pager_oldest_queued_seconds", oldest_s)

    def _worker_state(self) -> Iterator[Metric]:
        yield _family("fundflow_aligner_pending", self.pipeline.pending)
        newest = _family("fundflow_partition_watermark_seconds")
        for (topic, partition), ms in sorted(self.pipeline.aligner.source_times().items()):
            if ms >= 0:
                newest.add_metric([topic, str(partition)], ms / 1000)
        yield newest
        if self.rules is not None:
            reloads = _family("fundflow_rule_reloads")
            reloads.add_metric(["ok"], self.rules.reloads_ok)
            reloads.add_metric(["failed"], self.rules.reloads_failed)
            yield reloads
        if self.indicators is not None:
            reloads = _family("fundflow_indicator_reloads")
            reloads.add_metric(["ok"], self.indicators.reloads_ok)
            reloads.add_metric(["failed"], self.indicators.reloads_failed)
            yield reloads
            yield _family("fundflow_indicators", len(self.indicators.current))
        report = self.recovery.last_report
        if report is not None:
            yield _family("fundflow_rebuild_events", report.events)
            yield _family("fundflow_rebuild_seconds", report.seconds)
            yield _family("fundflow_rebuild_from_snapshot", 1 if report.from_snapshot else 0)
        if self.snapshots is not None and self.snapshots.last_written_ms is not None:
            yield _family("fundflow_snapshot_age_seconds", max(0.0, time.time() - self.snapshots.last_written_ms / 1000))
            yield _family("fundflow_snapshot_bytes", self.snapshots.last_size)
