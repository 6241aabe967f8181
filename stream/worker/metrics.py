"""Prometheus metrics of the worker, rendered in the text exposition format 0.0.4, with no dependency.

A dozen metrics do not justify prometheus_client and its process-global default registry: a registry
object per worker keeps tests independent and the scrape output exactly what this module says.
`FundflowMetrics` defines every metric the worker exports, in one place, so names and labels are
reviewed together and dashboards have one source of truth.

Updates take a per-metric lock: the asyncio loop, Faust's thread pool and a scrape may touch the same
metric, and an increment must never be lost to a half-rendered sample.
"""

from __future__ import annotations

import math
import re
import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping, Sequence

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")

# Seconds from an event's arrival to its warnings being acknowledged by the broker: a few ms normally,
# seconds when the broker or a rebuild is slow. Prometheus client defaults, plus the tail we page on.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def format_value(value: float) -> str:
    """A sample value as Prometheus' Go parser reads it (the reference client's spelling)."""
    if value == math.inf:
        return "+Inf"
    if value == -math.inf:
        return "-Inf"
    if math.isnan(value):
        return "NaN"
    return repr(float(value))


def escape_label_value(value: str) -> str:
    """Backslash, double quote and line feed are the three characters a label value must escape."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def escape_help(text: str) -> str:
    """HELP text escapes only backslash and line feed (quotes stay as they are)."""
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _label_text(names: Sequence[str], values: Sequence[str]) -> str:
    if not names:
        return ""
    pairs = ",".join(f'{name}="{escape_label_value(value)}"' for name, value in zip(names, values))
    return "{" + pairs + "}"


class _Metric:
    """A metric family: one name, one type, one sample set per combination of label values."""

    kind = ""
    reserved_labels: tuple[str, ...] = ()

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str] = ()) -> None:
        if not _METRIC_NAME.match(name):
            raise ValueError(f"metric name must match {_METRIC_NAME.pattern}, got {name!r}")
        if not documentation.strip():
            raise ValueError(f"metric {name}: help text must not be empty")
        labelnames = tuple(labelnames)
        for label in labelnames:
            if not _LABEL_NAME.match(label) or label.startswith("__"):
                raise ValueError(f"metric {name}: label name must match {_LABEL_NAME.pattern} and not start "
                                 f"with '__', got {label!r}")
            if label in self.reserved_labels:
                raise ValueError(f"metric {name}: label name {label!r} is reserved for {self.kind}s")
        if len(set(labelnames)) != len(labelnames):
            raise ValueError(f"metric {name}: duplicated label names in {labelnames}")
        self.name = name
        self.documentation = documentation
        self.labelnames = labelnames
        self._lock = threading.Lock()
        self._values: dict[tuple[str, ...], object] = {}
        if not labelnames:
            self._values[()] = self._initial()

    def _initial(self) -> object:
        return 0.0

    def _key(self, labels: Mapping[str, object]) -> tuple[str, ...]:
        if set(labels) != set(self.labelnames):
            raise ValueError(f"metric {self.name}: expected labels {sorted(self.labelnames)}, "
                             f"got {sorted(labels)}")
        return tuple(str(labels[name]) for name in self.labelnames)

    def remove(self, **labels: object) -> None:
        """Forget one label combination (a revoked partition must not keep exporting a stale lag)."""
        key = self._key(labels)
        with self._lock:
            self._values.pop(key, None)

    def clear(self) -> None:
        if not self.labelnames:
            raise ValueError(f"metric {self.name} has no labels to clear")
        with self._lock:
            self._values.clear()

    def value(self, **labels: object) -> float:
        """The current value (counter, gauge) or the count of observations (histogram); 0 if never set."""
        key = self._key(labels)
        with self._lock:
            current = self._values.get(key)
        if current is None:
            return 0.0
        return current.count if isinstance(current, _HistogramState) else float(current)  # type: ignore[union-attr]

    def render(self) -> str:
        lines = [f"# HELP {self.name} {escape_help(self.documentation)}", f"# TYPE {self.name} {self.kind}"]
        with self._lock:
            items = sorted(self._values.items())
            lines.extend(self._sample_lines(items))
        return "\n".join(lines) + "\n"

    def _sample_lines(self, items) -> Iterable[str]:
        for key, value in items:
            yield f"{self.name}{_label_text(self.labelnames, key)} {format_value(value)}"


class Counter(_Metric):
    """Only goes up. Names end in `_total`, as the exposition format's counter convention asks."""

    kind = "counter"

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str] = ()) -> None:
        if not name.endswith("_total"):
            raise ValueError(f"counter name must end in '_total', got {name!r}")
        super().__init__(name, documentation, labelnames)

    def inc(self, amount: float = 1.0, **labels: object) -> None:
        if not amount >= 0:   # also refuses NaN
            raise ValueError(f"counter {self.name} can only go up: inc({amount!r})")
        key = self._key(labels)
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + amount  # type: ignore[operator]

    def advance_to(self, total: float, **labels: object) -> None:
        """Mirror a cumulative count kept elsewhere (the message handler's counters) without double counting.

        A total lower than the exported one means the source was reset, which a counter cannot express.
        """
        key = self._key(labels)
        with self._lock:
            current = float(self._values.get(key, 0.0))  # type: ignore[arg-type]
            if not total >= current:
                raise ValueError(f"counter {self.name}{_label_text(self.labelnames, key)} can only go up: "
                                 f"at {format_value(current)}, asked to go to {total!r}")
            self._values[key] = float(total)


class Gauge(_Metric):
    """Goes up and down: sizes, positions, lags."""

    kind = "gauge"

    def set(self, value: float, **labels: object) -> None:
        key = self._key(labels)
        with self._lock:
            self._values[key] = float(value)

    def inc(self, amount: float = 1.0, **labels: object) -> None:
        key = self._key(labels)
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + amount  # type: ignore[operator]

    def dec(self, amount: float = 1.0, **labels: object) -> None:
        self.inc(-amount, **labels)


class _HistogramState:
    __slots__ = ("bucket_counts", "count", "total")

    def __init__(self, buckets: int) -> None:
        self.bucket_counts = [0] * buckets   # per bucket, not cumulative: made cumulative when rendered
        self.count = 0
        self.total = 0.0


class Histogram(_Metric):
    """Observations counted into cumulative `le` buckets, with their sum and count."""

    kind = "histogram"
    reserved_labels = ("le",)

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str] = (),
                 buckets: Sequence[float] = LATENCY_BUCKETS) -> None:
        bounds = [float(b) for b in buckets]
        if not bounds or any(math.isnan(b) for b in bounds) or bounds != sorted(set(bounds)):
            raise ValueError(f"histogram {name}: buckets must be distinct and increasing, got {list(buckets)}")
        if bounds[-1] != math.inf:
            bounds.append(math.inf)
        self.buckets = tuple(bounds)
        super().__init__(name, documentation, labelnames)

    def _initial(self) -> object:
        return _HistogramState(len(self.buckets))

    def observe(self, value: float, **labels: object) -> None:
        if math.isnan(value):
            raise ValueError(f"histogram {self.name}: cannot observe NaN")
        key = self._key(labels)
        index = next(i for i, bound in enumerate(self.buckets) if value <= bound)
        with self._lock:
            state = self._values.get(key)
            if state is None:
                state = self._values[key] = _HistogramState(len(self.buckets))
            state.bucket_counts[index] += 1  # type: ignore[union-attr]
            state.count += 1  # type: ignore[union-attr]
            state.total += value  # type: ignore[union-attr]

    def _sample_lines(self, items) -> Iterable[str]:
        bucket_labels = (*self.labelnames, "le")
        for key, state in items:
            cumulative = 0
            for bound, count in zip(self.buckets, state.bucket_counts):
                cumulative += count
                labels = _label_text(bucket_labels, (*key, format_value(bound)))
                yield f"{self.name}_bucket{labels} {format_value(cumulative)}"
            labels = _label_text(self.labelnames, key)
            yield f"{self.name}_sum{labels} {format_value(state.total)}"
            yield f"{self.name}_count{labels} {format_value(state.count)}"


class Registry:
    """The metrics of one worker, rendered in registration order. Collectors run just before a scrape."""

    def __init__(self) -> None:
        self._metrics: dict[str, _Metric] = {}
        self._collectors: list[Callable[[], None]] = []
        self._lock = threading.Lock()

    def register(self, metric: _Metric) -> _Metric:
        with self._lock:
            if metric.name in self._metrics:
                raise ValueError(f"metric {metric.name} is already registered")
            self._metrics[metric.name] = metric
        return metric

    def add_collector(self, collect: Callable[[], None]) -> None:
        """`collect()` copies values kept elsewhere (handler counters, detector sizes) into metrics."""
        with self._lock:
            self._collectors.append(collect)

    def render(self) -> str:
        with self._lock:
            collectors = list(self._collectors)
            metrics = list(self._metrics.values())
        for collect in collectors:
            collect()
        return "".join(metric.render() for metric in metrics)


@dataclass(frozen=True)
class FundflowMetrics:
    """Every metric the worker exports. Build one per worker with `FundflowMetrics.create()`."""

    registry: Registry
    events_consumed: Counter
    deadlettered: Counter
    warnings: Counter
    sink_deliveries: Counter
    sink_failures: Counter
    sink_retries: Counter
    graph_nodes: Gauge
    graph_edges: Gauge
    lots: Gauge
    watermark: Gauge
    consumer_lag: Gauge
    processing_latency: Histogram
    aligner_pending: Gauge
    rule_reloads: Counter
    rebuild_events: Gauge
    rebuild_seconds: Gauge
    pager_queued: Gauge
    pager_oldest_queued: Gauge
    publish_failures: Counter
    snapshot_age: Gauge
    partition_watermark: Gauge
    snapshot_bytes: Gauge
    rebuild_from_snapshot: Gauge

    @classmethod
    def create(cls) -> "FundflowMetrics":
        registry = Registry()

        def add(metric):
            return registry.register(metric)

        return cls(
            registry=registry,
            events_consumed=add(Counter("fundflow_events_consumed_total",
                                        "Input events accepted by the detector, per source topic.", ["topic"])),
            deadlettered=add(Counter("fundflow_deadlettered_total",
                                     "Messages sent to the dead-letter topic, per reason code.",
                                     ["reason"])),
            warnings=add(Counter("fundflow_warnings_total", "Early warnings raised, per rule and severity.",
                                 ["rule_id", "severity"])),
            sink_deliveries=add(Counter("fundflow_sink_deliveries_total",
                                        "Warnings a sink delivered (duplicates included), per sink.", ["sink"])),
            sink_failures=add(Counter("fundflow_sink_failures_total",
                                      "Failed delivery attempts, per sink.", ["sink"])),
            sink_retries=add(Counter("fundflow_sink_retries_total",
                                     "Delivery attempts that were retries, per sink.", ["sink"])),
            graph_nodes=add(Gauge("fundflow_graph_nodes", "Accounts in the rolling transaction graph.")),
            graph_edges=add(Gauge("fundflow_graph_edges", "Transfers in the rolling transaction graph.")),
            lots=add(Gauge("fundflow_lots", "Disbursed amounts (lots) the fund tracer still follows.")),
            watermark=add(Gauge("fundflow_watermark_seconds",
                                "Event-time watermark of the detector, as Unix epoch seconds.")),
            consumer_lag=add(Gauge("fundflow_consumer_lag",
                                   "Messages between the consumer position and the end of the log, "
                                   "per input topic-partition.", ["topic", "partition"])),
            processing_latency=add(Histogram("fundflow_processing_latency_seconds",
                                             "Seconds from reading an event to its warnings being stored "
                                             "in the warnings topic.")),
            aligner_pending=add(Gauge("fundflow_aligner_pending",
                                      "Valid events held by the event-time aligner, waiting for the other "
                                      "input partitions to catch up.")),
            rule_reloads=add(Counter("fundflow_rule_reloads_total",
                                     "Changes of the rules directory seen by the worker, by result (ok: "
                                     "swapped in; failed: refused, the previous rules keep running).",
                                     ["result"])),
            rebuild_events=add(Gauge("fundflow_rebuild_events",
                                     "Events replayed from the input log by the last state rebuild.")),
            rebuild_seconds=add(Gauge("fundflow_rebuild_seconds",
                                      "Duration of the last state rebuild from the input log.")),
            pager_queued=add(Gauge("fundflow_pager_queued",
                                   "Pages in the durable page queue, waiting for the webhook.")),
            pager_oldest_queued=add(Gauge("fundflow_pager_oldest_queued_seconds",
                                          "Seconds the oldest queued page has waited for the webhook.")),
            publish_failures=add(Counter("fundflow_publish_failures_total",
                                         "Records the broker refused for good, per kind: a warning (then "
                                         "dead-lettered) or a dead letter (then only logged).", ["record"])),
            snapshot_age=add(Gauge("fundflow_snapshot_age_seconds",
                                   "Seconds since the last snapshot of the detection state was written "
                                   "(absent before the first one).")),
            snapshot_bytes=add(Gauge("fundflow_snapshot_bytes", "Size of the last snapshot written.")),
            partition_watermark=add(Gauge("fundflow_partition_watermark_seconds",
                                          "Newest event time read from each input partition, as Unix epoch "
                                          "seconds: a partition far behind the others holds their events back.",
                                          ["topic", "partition"])),
            rebuild_from_snapshot=add(Gauge("fundflow_rebuild_from_snapshot",
                                            "1 when the last rebuild started from a snapshot (and replayed only "
                                            "the log after it), 0 when it replayed the whole window.")),
        )

    def render(self) -> str:
        return self.registry.render()


# --- the worker's web pages ---------------------------------------------------------------------------------
# `stream.worker.app.build_app` calls `attach_metrics(app, settings)` when this module exists. Everything
# below talks to the Faust app by duck typing (no Faust import), reading what the worker already keeps:
# the message handler's counters, the detector's watermark, and the consumer's offsets (Faust's monitor).

def attach_metrics(app, settings) -> None:
    """Serve /healthz, /readyz and /metrics on the worker's web port and keep the metrics current.

    Sets `app.fundflow_metrics` (FundflowMetrics) and `app.fundflow_health` (HealthTracker): sinks report
    reachability with `app.fundflow_health.set_sink(name, reachable, detail)`, and code that observes
    latency, warnings or deliveries updates `app.fundflow_metrics` directly.
    """
    from .health import HealthTracker, healthz_page, metrics_page, readyz_page

    metrics = FundflowMetrics.create()
    # The warning store must have answered before the worker is ready; the pager reports only once it pages.
    sinks = getattr(app, "fundflow_sinks", None)
    health = HealthTracker(required_sinks=("clickhouse",) if getattr(sinks, "clickhouse", None) else ())
    app.fundflow_metrics = metrics
    app.fundflow_health = health
    input_topics = (settings.disbursements_topic, settings.transfers_topic)

    def refresh() -> None:
        _copy_handler_counters(app, metrics)
        _copy_sink_counters(app, metrics)
        lags = _input_lags(app, input_topics)
        metrics.consumer_lag.clear()
        for (topic, partition), lag in lags.items():
            metrics.consumer_lag.set(lag, topic=topic, partition=partition)
        _copy_worker_state(app, metrics)
        if getattr(app, "fundflow_recovery", None) is not None:
            pass        # the rebuild reports its own progress to `health` (stream.worker.recovery)
        elif not health.snapshot().state_rebuilt:
            behind = {tp: lag for tp, lag in lags.items() if lag > 0}
            if behind:
                worst = max(behind, key=behind.get)
                health.mark_state_rebuilt(False, f"{worst[0]}[{worst[1]}] {behind[worst]} messages behind")
            elif _has_assignment(app, input_topics):
                health.mark_state_rebuilt(True)

    metrics.registry.add_collector(refresh)

    def respond(view, page):
        # bytes + an explicit header: the exposition format wants its full content type, parameters included
        return view.bytes(page.body.encode("utf-8"), status=page.status, headers={"Content-Type": page.content_type})

    async def healthz(self, request):
        return respond(self, healthz_page(health.snapshot()))

    async def readyz(self, request):
        refresh()
        return respond(self, readyz_page(health.snapshot()))

    async def metrics_view(self, request):
        return respond(self, metrics_page(metrics.registry))

    app.page("/healthz", name="fundflow_healthz")(healthz)
    app.page("/readyz", name="fundflow_readyz")(readyz)
    app.page("/metrics", name="fundflow_metrics")(metrics_view)

    async def mark_started() -> None:
        health.mark_started()

    app.task(mark_started)


def _copy_handler_counters(app, metrics: FundflowMetrics) -> None:
    handler = getattr(app, "fundflow_handler", None)
    if handler is None:
        return
    for topic, count in dict(handler.accepted).items():
        metrics.events_consumed.advance_to(count, topic=topic)
    refused = dict(handler.refused)
    publisher = getattr(app, "fundflow_publisher", None)
    if publisher is not None:
        if publisher.unpublishable_warnings:
            refused["warning_unpublishable"] = publisher.unpublishable_warnings
        metrics.publish_failures.advance_to(publisher.unpublishable_warnings, record="warning")
        metrics.publish_failures.advance_to(publisher.unpublishable_dead_letters, record="dead_letter")
    bad_warnings = getattr(getattr(app, "fundflow_sinks", None), "bad_warnings", 0)
    if bad_warnings:
        refused["bad_warning"] = bad_warnings
    for reason, count in refused.items():
        metrics.deadlettered.advance_to(count, reason=reason)
    detector = handler.detector
    watermark = getattr(detector, "watermark", None)
    if isinstance(watermark, int):
        metrics.watermark.set(watermark / 1000)
    stats = detector.stats() if callable(getattr(detector, "stats", None)) else {}
    sizes = ((metrics.graph_nodes, "nodes", "graph_nodes"), (metrics.graph_edges, "edges", "graph_edges"),
             (metrics.lots, "lots", "lots"))
    for gauge, key, attribute in sizes:   # Detector.stats(), or plain attributes on simpler detectors
        value = stats.get(key, getattr(detector, attribute, None))
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            gauge.set(value)
    if getattr(app, "fundflow_pipeline", None) is not None:
        return      # the pipeline counts published warnings itself: a rebuilt detector's stats start at 0
    rules = getattr(detector, "rules", None)
    for rule_id, count in dict(stats.get("warnings") or {}).items():
        try:
            severity = rules.by_id(rule_id).severity
        except (AttributeError, KeyError):
            severity = "unknown"
        metrics.warnings.advance_to(count, rule_id=rule_id, severity=severity)


def _copy_worker_state(app, metrics: FundflowMetrics) -> None:
    """Aligner backlog, rule reloads and the last rebuild, from the objects the worker keeps."""
    pipeline = getattr(app, "fundflow_pipeline", None)
    if pipeline is not None:
        metrics.aligner_pending.set(pipeline.pending)
        metrics.partition_watermark.clear()
        for (topic, partition), newest in pipeline.aligner.source_times().items():
            if newest >= 0:
                metrics.partition_watermark.set(newest / 1000, topic=topic, partition=partition)
    rules = getattr(app, "fundflow_rules", None)
    if rules is not None:
        metrics.rule_reloads.advance_to(rules.reloads_ok, result="ok")
        metrics.rule_reloads.advance_to(rules.reloads_failed, result="failed")
    report = getattr(getattr(app, "fundflow_recovery", None), "last_report", None)
    if report is not None:
        metrics.rebuild_events.set(report.events)
        metrics.rebuild_seconds.set(report.seconds)
        metrics.rebuild_from_snapshot.set(1 if report.from_snapshot else 0)
    snapshots = getattr(app, "fundflow_snapshots", None)
    if snapshots is not None and snapshots.last_written_ms is not None:
        metrics.snapshot_age.set(max(0.0, time.time() - snapshots.last_written_ms / 1000))
        metrics.snapshot_bytes.set(snapshots.last_size)


def _copy_sink_counters(app, metrics: FundflowMetrics) -> None:
    """The sinks count what they delivered (rows stored, pages taken) and their failed attempts themselves;
    mirror them per sink."""
    sinks = getattr(app, "fundflow_sinks", None)
    for name, delivered in (("clickhouse", "rows_written"), ("pager", "delivered")):
        sink = getattr(sinks, name, None)
        for counter, attribute in ((metrics.sink_deliveries, delivered), (metrics.sink_failures, "failed_attempts")):
            value = getattr(sink, attribute, None)
            if isinstance(value, int):
                counter.advance_to(value, sink=name)
    pager = getattr(sinks, "pager", None)
    if pager is not None and callable(getattr(pager, "queue_stats", None)):
        queued, oldest_s = pager.queue_stats()
        metrics.pager_queued.set(queued)
        metrics.pager_oldest_queued.set(oldest_s)


def _has_assignment(app, topics: Sequence[str]) -> bool:
    try:
        assignment = app.consumer.assignment()
    except Exception:  # noqa: BLE001 - no consumer yet (not started, or between rebalances)
        return False
    return any(tp.topic in topics for tp in assignment)


def _input_lags(app, topics: Sequence[str]) -> dict[tuple[str, int], int]:
    """Lag per assigned input partition: end offset seen by the consumer minus the next offset to read.

    A partition the consumer has fetched nothing from yet has no known end offset and counts as lag 0;
    that is an empty partition once the first fetch has run.
    """
    monitor = getattr(app, "monitor", None)
    try:
        assignment = app.consumer.assignment()
    except Exception:  # noqa: BLE001 - no consumer yet
        return {}
    ends = getattr(monitor, "tp_end_offsets", None) or {}
    reads = getattr(monitor, "tp_read_offsets", None) or {}
    lags = {}
    for tp in assignment:
        if tp.topic not in topics:
            continue
        end = ends.get(tp)
        position = reads.get(tp, -1) + 1
        lags[(tp.topic, tp.partition)] = max(0, end - position) if end is not None else 0
    return lags
