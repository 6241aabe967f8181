"""The Faust side of the worker: the app, its input agents, timers and rebalance and shutdown callbacks.

Decisions live in `MessageHandler`, ordering and state generations in `Pipeline`, rebuilds in
`recovery`, rule reloads in `reload`; `compose` builds them and calls these functions to wire Kafka to them. One input
agent, concurrency 1, takes the input in batches (`batches`), so each partition's events reach the aligner in log order
(docs/architecture.md, invariant 1); the aligner then releases them to the detector in event-time order across
partitions. A batch's warnings are acknowledged by the broker before its offsets are acknowledged to Faust's
consumer (and so before they can be committed), so a crash can re-emit a warning (same id, sinks dedupe) but never
lose one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any, Callable

import faust

from ..settings import Settings
from .deadletter import DeadLetter
from .batches import InputBatches
from .handler import MessageHandler
from .pipeline import Pipeline
from .publisher import Publisher
from .recovery import StateRecovery
from .reload import DirectoryReloader, RuleReloader
from .checkpoint import SnapshotWriter
from .transport import WorkerApp
from .tuning import ALIGN_TICK_S, SHUTDOWN_FLUSH_TIMEOUT_S, SNAPSHOT_CHECK_S
from ..clock import wall_clock_ms

log = logging.getLogger(__name__)

RAW = "raw"  # input values are parsed by parse_event, not by Faust, so bad bytes reach the dead-letter path
WORKER_ERROR = "worker_error"   # dead-letter reason of a batch the pipeline failed on

def make_app(settings: Settings, app_id: str | None = None) -> WorkerApp:
    """The Faust app with fundflow's broker, consumer and web settings; agents, timers and pages are added by
    `stream.worker.compose`."""
    datadir = Path(settings.data_dir) / "worker"
    datadir.parent.mkdir(parents=True, exist_ok=True)   # Faust creates only the last level
    app = WorkerApp(
        app_id or settings.app_id,
        broker=settings.broker_url,
        broker_session_timeout=settings.broker_session_timeout / 1000,
        broker_rebalance_timeout=settings.broker_rebalance_timeout / 1000,
        broker_heartbeat_interval=min(3.0, settings.broker_session_timeout / 3000),
        datadir=str(datadir),
        store="memory://",
        key_serializer=RAW,
        value_serializer=RAW,
        web_port=settings.web_port,
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=1,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
    )
    app.fetch_max_wait_ms = settings.broker_fetch_max_wait
    return app


def add_input_agents(app: faust.App, settings: Settings, pipeline: Pipeline, publisher: Publisher,
                     handler: MessageHandler, batches: InputBatches) -> None:
    """One agent for both input topics, concurrency 1: it takes the batches the consumer hands over
    (`batches`), so each partition's events reach the aligner in log order, and acknowledges a batch's offsets
    only once the pipeline has published its outcomes and the broker has acknowledged them.

    The agent's own stream subscribes Faust's consumer to the input topics; their records never reach it (the
    consumer takes them out of each fetch, see `transport`), which is what saves Faust's per-message cost."""
    app.input_batches = batches

    async def consume(_stream) -> None:
        while True:
            batch = await batches.get()
            try:
                await pipeline.offer_batch(batch.messages)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - a defect must cost this batch's detection, not the agent
                await _dead_letter_batch(publisher, handler, batch.messages, exc)
            if batches.is_current(batch):       # after a rebalance, the partitions are read again from the commit
                app.consumer.acknowledge(batch.offsets)

    async def drop_fetched(_sender: Any, _revoked: Any, **_: Any) -> None:
        # Faust clears its streams' buffers here; the next assignment seeks back to the committed offsets.
        batches.reset()

    app.on_partitions_revoked.connect(drop_fetched)
    input_topic = app.topic(settings.disbursements_topic, settings.transfers_topic, key_type=bytes,
                            value_type=bytes, key_serializer=RAW, value_serializer=RAW)
    app.agent(input_topic, name="fundflow.input", concurrency=1)(named_agent(consume, "consume_input"))

    async def release_aligned() -> None:
        try:
            await pipeline.tick()
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - a timer that raises is stopped for good; log and keep ticking
            log.exception("releasing aligned events failed; trying again at the next tick")

    app.timer(ALIGN_TICK_S, name="fundflow.align")(release_aligned)


def add_snapshots(app: faust.App, settings: Settings, pipeline: Pipeline, snapshots: SnapshotWriter) -> Callable[[], bool]:
    """Take a snapshot every snapshot_interval, between batches; returns the function that takes one now."""
    def snapshot_now() -> bool:
        taken = pipeline.checkpoint()
        return taken is not None and snapshots.start(*taken, now_ms=wall_clock_ms())

    last_snapshot = [time.monotonic()]

    async def take_snapshot() -> None:
        # Checked every second, taken once the interval is over and the pipeline is between batches.
        try:
            snapshots.poll()
            if time.monotonic() - last_snapshot[0] >= settings.snapshot_interval / 1000 and snapshot_now():
                last_snapshot[0] = time.monotonic()
        except Exception:  # noqa: BLE001 - a failed snapshot costs restart time, never detection
            log.exception("taking a snapshot failed; the previous one stays")

    app.timer(SNAPSHOT_CHECK_S, name="fundflow.snapshot")(take_snapshot)
    return snapshot_now


def add_lifecycle(app: faust.App, pipeline: Pipeline, recovery: StateRecovery, snapshots: SnapshotWriter | None,
                  snapshot_now: Callable[[], bool] | None) -> None:
    """Rebalances go to the recovery; shutdown writes the last snapshot, then flushes what the aligner holds."""
    async def on_assigned(_sender: Any, assigned: Any, **_: Any) -> None:
        await recovery.on_assigned(assigned)

    async def on_revoked(_sender: Any, revoked: Any, **_: Any) -> None:
        await recovery.on_revoked(revoked)

    async def on_shutdown(*_: Any, **__: Any) -> None:
        await recovery.stop()
        if not pipeline.is_open:
            return        # state not rebuilt: what is held belongs to the next run's rebuild
        if snapshots is not None and snapshot_now is not None:
            # Before the flush: the flush detects held events ahead of partitions that have not caught up, an
            # order no replay of the log would take. The snapshot keeps them as held, so the restart detects
            # them again in event-time order (re-publishing the same warning ids) and carries on from there.
            try:
                snapshots.cancel()         # an older periodic write in progress: superseded by this one
                if snapshot_now():
                    snapshots.wait()
            except Exception:  # noqa: BLE001 - see add_snapshots
                log.exception("the shutdown snapshot failed; the next start replays from the previous one")
        started = time.monotonic()
        try:
            flushed = await asyncio.wait_for(pipeline.flush(), SHUTDOWN_FLUSH_TIMEOUT_S)
        except Exception as exc:  # noqa: BLE001 - the rebuild after restart replays these events anyway
            log.warning("could not flush the aligner at shutdown (%r); the next start replays those events", exc)
            return
        log.info("shutdown: %d held events detected and published in %.2fs", flushed, time.monotonic() - started)

    app.on_partitions_assigned.connect(on_assigned)
    app.on_partitions_revoked.connect(on_revoked)
    app.on_before_shutdown.connect(on_shutdown)


def add_reloads(app: faust.App, settings: Settings, pipeline: Pipeline, rules: RuleReloader | None,
                indicators: DirectoryReloader | None = None, feeds: Any = None) -> None:
    """One timer checks rules_dir and indicators_dir every rules_reload_interval; with `feeds` (a
    `FeedFollower`), the feeds that arrived on indicators_topic are merged into indicators_dir first."""
    if rules is not None:
        rules.apply = pipeline.replace_rules
    reloaders = [reloader for reloader in (rules, indicators) if reloader is not None]

    async def reload_rules() -> None:
        if feeds is not None:
            try:
                await feeds.poll()
            except Exception:  # noqa: BLE001 - a feed that cannot be read now is read at a later tick
                log.exception("reading indicator feeds from %s failed; trying again at the next check",
                              settings.indicators_topic)
        for reloader in reloaders:
            reloader.check()    # logs what changed or every error; counters are read by /metrics

    if feeds is not None:
        async def stop_feeds(*_: Any, **__: Any) -> None:
            await feeds.stop()

        app.on_before_shutdown.connect(stop_feeds)

    app.timer(settings.rules_reload_interval / 1000, name="fundflow.rules.reload")(reload_rules)


async def _dead_letter_batch(publisher: Publisher, handler: MessageHandler, batch: list, exc: Exception) -> None:
    """The last line of defence: the pipeline raised on a batch (a defect, not bad input, which the handler
    refuses one message at a time). Each message of the batch is dead-lettered with the error, so an operator
    can replay them once it is fixed; the agent lives on."""
    log.exception("the pipeline failed on a batch of %d messages; dead-lettering them", len(batch))
    error = f"{type(exc).__name__}: {str(exc)[:500]}"
    handler.refused[WORKER_ERROR] += len(batch)
    for value, key, origin, headers in batch:
        await publisher.send_dead_letter(DeadLetter(key=key, value=value, reason=WORKER_ERROR, error=error,
                                                    origin=origin, original_headers=headers))


def raw_topic(app: faust.App, name: str):
    return app.topic(name, key_type=bytes, value_type=bytes, key_serializer=RAW, value_serializer=RAW)


def named_agent(fn: Callable[..., Any], name: str) -> Callable[..., Any]:
    """Faust names agents after their function; two agents need two distinct functions."""
    async def agent(stream):
        await fn(stream)
    agent.__name__ = agent.__qualname__ = name
    return agent
