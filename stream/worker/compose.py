"""The worker's composition: every part built once, in order, and handed its collaborators.

Reading this module top to bottom is reading the worker: health and metrics first (everything reports to
them), then the detector side (handler, publisher, pipeline, snapshots, recovery), the Faust wiring of the
input, the sinks, and last the pages that show it all. Nothing is looked up later by name or attribute.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import faust

from ..model.version import fundflow_version
from ..settings import Settings
from . import app as faust_wiring
from .alignment import EventTimeAligner
from .batches import InputBatches
from .checkpoint import Compatibility, SnapshotLoader, SnapshotWriter, snapshot_path
from .evidence_index import EvidenceIndex
from .handler import DetectorLike, MessageHandler
from .health import HealthTracker
from .indicator_feeds import FeedFollower
from .metrics import FundflowMetrics, WorkerCollector
from .pages import add_pages, input_lags
from .pipeline import Pipeline
from .publisher import Publisher
from .recovery import StateRecovery
from .reload import IndicatorReloader, RuleReloader
from .sink_agents import SinkAgents, attach_sinks

DetectorSource = DetectorLike | Callable[[], DetectorLike]


@dataclass(frozen=True)
class Worker:
    """One worker's parts, for the runner, the pages and tests."""

    app: faust.App
    settings: Settings
    health: HealthTracker
    metrics: FundflowMetrics
    handler: MessageHandler
    publisher: Publisher
    pipeline: Pipeline
    recovery: StateRecovery
    snapshots: SnapshotWriter | None
    rules: RuleReloader | None
    sinks: SinkAgents | None
    indicators: IndicatorReloader | None = None


def build_worker(settings: Settings, detector: DetectorSource, *, with_sinks: bool = True,
                 app_id: str | None = None, rules: RuleReloader | None = None,
                 indicators: IndicatorReloader | None = None) -> Worker:
    """A configured, unstarted worker whose agents feed the detector.

    `detector` is a factory of fresh detectors (each partition assignment rebuilds one from the log) or, for
    tests that record what reaches it, one instance that is reused. With `rules`, the rules directory is
    watched and reloaded every `rules_reload_interval`; with `indicators`, so is indicators_dir, on the same timer,
    and the running detector takes the new set (`replace_indicators`). Without sinks (`with_sinks=False`) the worker only
    publishes to the warnings topic, and is ready without a warning store.
    """
    app = faust_wiring.make_app(settings, app_id)
    # The warning store must have answered before the worker is ready; the pager reports once it pages.
    health = HealthTracker(required_sinks=("clickhouse",) if with_sinks else ())
    metrics = FundflowMetrics()

    make_detector = _detector_factory(detector)
    evidence = EvidenceIndex(settings.window, settings.allowed_lateness) if settings.evidence_chain else None
    handler = MessageHandler(make_detector(), evidence=evidence)
    publisher = Publisher(faust_wiring.raw_topic(app, settings.warnings_topic),
                          faust_wiring.raw_topic(app, settings.deadletter_topic),
                          detector_settings=recorded_settings(settings) if settings.evidence_chain else "")
    pipeline = Pipeline(
        handler, publish=publisher.publish,
        make_aligner=lambda: EventTimeAligner(idle_after_ms=settings.align_idle_after,
                                              max_pending=settings.align_max_pending, clock=_monotonic_ms),
        metrics=metrics)
    snapshots = None
    if settings.snapshot_interval > 0:
        snapshots = SnapshotWriter(snapshot_path(settings.data_dir, app.conf.id),
                                   Compatibility.current(app.conf.id, {**detection_settings(settings),
                                                                    "evidence_chain": settings.evidence_chain}))
    input_topics = (settings.disbursements_topic, settings.transfers_topic)
    recovery = StateRecovery(pipeline, make_detector, bootstrap=settings.broker_bootstrap, group_id=app.conf.id,
                             input_topics=input_topics, span_ms=settings.window + settings.allowed_lateness,
                             on_state=health.mark_state_rebuilt,
                             snapshots=SnapshotLoader(snapshots.path, snapshots.compatibility) if snapshots else None)

    batches = InputBatches(input_topics)
    faust_wiring.add_input_agents(app, settings, pipeline, publisher, handler, batches)
    snapshot_now = faust_wiring.add_snapshots(app, settings, pipeline, snapshots) if snapshots else None
    faust_wiring.add_lifecycle(app, pipeline, recovery, snapshots, snapshot_now)
    feeds = None
    if indicators is not None:
        indicators.apply = lambda new: _replace_indicators(pipeline, new)
        if settings.indicators_topic is not None:
            feeds = FeedFollower(settings)
    if rules is not None or indicators is not None:
        faust_wiring.add_reloads(app, settings, pipeline, rules, indicators, feeds)
    sinks = attach_sinks(app, settings, publisher=publisher, health=health) if with_sinks else None

    metrics.watch(WorkerCollector(handler=handler, publisher=publisher, pipeline=pipeline, recovery=recovery,
                                  snapshots=snapshots, rules=rules, sinks=sinks,
                                  lags=lambda: input_lags(app, input_topics), indicators=indicators))
    add_pages(app, health, metrics)
    return Worker(app=app, settings=settings, health=health, metrics=metrics, handler=handler, publisher=publisher,
                  pipeline=pipeline, recovery=recovery, snapshots=snapshots, rules=rules, sinks=sinks,
                  indicators=indicators)


def _replace_indicators(pipeline: Pipeline, indicators: object) -> None:
    """The running detector takes the new indicator set; a detector rebuilt later is made with it (the factory
    reads the reloader's current set)."""
    replace = getattr(pipeline.handler.detector, "replace_indicators", None)
    if replace is not None:
        replace(indicators)


def detection_settings(settings: Settings) -> dict:
    """The settings that shape detection state: a snapshot written under others is refused."""
    return {"window": settings.window, "allowed_lateness": settings.allowed_lateness,
            "tracer_policy": settings.tracer_policy, "trace_inflows_above": settings.trace_inflows_above,
            "identity_fields": list(settings.identity_fields)}


def recorded_settings(settings: Settings) -> str:
    """The detector settings recorded (and hashed into the evidence chain) beside every warning."""
    from ..evidence.hashing import detector_settings_text
    return detector_settings_text(settings.window, settings.allowed_lateness, settings.tracer_policy,
                                  settings.trace_inflows_above, fundflow_version(), settings.identity_fields)


def _detector_factory(detector: DetectorSource) -> Callable[[], DetectorLike]:
    if hasattr(detector, "process"):
        instance = detector
        return lambda: instance      # type: ignore[return-value]
    return detector                  # type: ignore[return-value]


def _monotonic_ms() -> int:
    return time.monotonic_ns() // 1_000_000
