"""Sink agents: the warnings topic (the outbox) delivered to ClickHouse and to the pager webhook.

The ClickHouse agent reads batches (`take_events`: at most clickhouse_batch_size warnings, or whatever
arrived within clickhouse_batch_interval) and does not leave a batch until every row is stored; Faust
acknowledges a batch's offsets only after the loop body returns, so a committed offset always means a
stored row. The pager agent handles one warning at a time and a timer sends storm summaries once their
minute is over. Both run with concurrency 1 and tolerate duplicates (ReplacingMergeTree, page ledger).
"""

from __future__ import annotations

import asyncio
import atexit
import logging
from dataclasses import dataclass, field
from typing import Any, Callable

import faust

from ..settings import Settings
from ..sinks.base import RetryPolicy, RetryStopped, Sleep
from ..sinks.dedupe import PageLedger
from ..sinks.pager import PagerConfig, PagerSink
from ..sinks.store import open_store
from ..clock import wall_clock_ms
from ..sinks.writer import ClickHouseSink
from ..warning import SEVERITY_RANK, EarlyWarning
from .deadletter import DeadLetter, Origin

log = logging.getLogger(__name__)

RAW = "raw"
BAD_WARNING = "bad_warning"
STORM_FLUSH_INTERVAL_S = 5.0


@dataclass
class SinkAgents:
    """What `attach_sinks` wired, for health pages and tests."""

    clickhouse: ClickHouseSink
    pager: PagerSink | None
    bad_warnings: int = 0
    agents: list[Any] = field(default_factory=list)


def _decode(value: bytes) -> EarlyWarning:
    """A warning from the outbox; ValueError/KeyError/TypeError when the bytes are not one."""
    warning = EarlyWarning.from_json(value)
    if warning.severity not in SEVERITY_RANK:
        raise ValueError(f"expected a severity among {', '.join(SEVERITY_RANK)}, got {warning.severity!r}")
    if not warning.warning_id or not warning.rule_id:
        raise ValueError("warning_id and rule_id must not be empty")
    return warning


def attach_sinks(app: faust.App, settings: Settings, *, sleep: Sleep = asyncio.sleep,
                 clock: Callable[[], int] = wall_clock_ms) -> SinkAgents:
    """Add the ClickHouse agent (always) and the pager agent (when webhook_url is set) to `app`."""
    warnings_topic = app.topic(settings.warnings_topic, key_type=bytes, value_type=bytes,
                               key_serializer=RAW, value_serializer=RAW)
    deadletter_topic = app.topic(settings.deadletter_topic, key_type=bytes, value_type=bytes,
                                 key_serializer=RAW, value_serializer=RAW)
    policy = RetryPolicy.from_settings(settings)
    store = open_store(settings.clickhouse_url)
    # Closed at interpreter exit, after Faust's loop has stopped: an embedded chDB session left to the
    # interpreter's teardown can crash the process on its way out.
    atexit.register(store.close)
    sink = ClickHouseSink(store, batch_size=settings.clickhouse_batch_size, policy=policy, sleep=sleep, clock=clock,
                          stopping=lambda: bool(app.should_stop), on_status=_reporter(app, CLICKHOUSE))
    wired = SinkAgents(clickhouse=sink, pager=None)
    # By default Faust waits, on stop and on rebalance, until every message in flight is acknowledged: with
    # ClickHouse down that wait never ends. Without it Faust commits what is acknowledged (stored) and
    # re-reads the rest after the restart or rebalance; every fundflow consumer tolerates re-reads.
    app.conf.stream_wait_empty = False
    app.fundflow_sinks = wired

    async def send_dead_letter(key: bytes | None, value: bytes, reason: str, error: str, origin: Origin) -> None:
        letter = DeadLetter(key=key, value=value, reason=reason, error=error, origin=origin)
        pending = await deadletter_topic.send(key=letter.key, value=letter.value, headers=letter.headers())
        await pending

    async def store_warnings(stream) -> None:
        if not sink.schema_ready:
            try:
                await sink.ensure_schema()  # at start, so the table exists before the first warning
            except RetryStopped:
                return
        interval_s = settings.clickhouse_batch_interval / 1000
        async for events in stream.take_events(settings.clickhouse_batch_size, within=interval_s):
            warnings = []
            for event in events:
                message = event.message
                try:
                    warnings.append(_decode(message.value))
                except (ValueError, KeyError, TypeError) as exc:
                    wired.bad_warnings += 1
                    await send_dead_letter(message.key, message.value, BAD_WARNING,
                                           f"not a warning: {exc!r}",
                                           Origin(message.topic, message.partition, message.offset))
            try:
                await sink.write(warnings)
            except asyncio.CancelledError:
                _release_unstored(events)
                raise
            except RetryStopped:
                _release_unstored(events)
                await asyncio.Event().wait()  # nothing more to do until the worker cancels the agent

    store_agent = app.agent(warnings_topic, name="fundflow.sink.clickhouse", concurrency=1)(
        _named(store_warnings, "store_warnings"))
    wired.agents.append(store_agent)

    if settings.webhook_url:
        origin_now: list[Origin] = [Origin(settings.warnings_topic, -1, -1)]

        async def page_dead_letter(warning: EarlyWarning, reason: str, detail: str) -> None:
            await send_dead_letter(warning.warning_id.encode(), warning.to_json(), reason, detail, origin_now[0])

        pager = PagerSink(PagerConfig.from_settings(settings), PageLedger.in_data_dir(settings.data_dir),
                          page_dead_letter, policy=RetryPolicy.from_settings(settings, settings.webhook_max_attempts),
                          sleep=sleep, clock=clock, on_status=_reporter(app, PAGER))
        wired.pager = pager
        lock = asyncio.Lock()

        async def page_warnings(stream) -> None:
            async for event in stream.events():
                message = event.message
                try:
                    warning = _decode(message.value)
                except (ValueError, KeyError, TypeError):
                    continue  # the ClickHouse agent dead-letters it; one letter per bad message is enough
                async with lock:
                    origin_now[0] = Origin(message.topic, message.partition, message.offset)
                    try:
                        await pager.handle(warning)
                    except asyncio.CancelledError:
                        _release_unstored([event])  # stopped mid-retry: page it after the restart instead
                        raise
                    finally:
                        origin_now[0] = Origin(settings.warnings_topic, -1, -1)

        wired.agents.append(app.agent(warnings_topic, name="fundflow.sink.pager", concurrency=1)(
            _named(page_warnings, "page_warnings")))

        async def flush_storms() -> None:
            async with lock:
                await pager.flush_due()

        app.timer(STORM_FLUSH_INTERVAL_S, name="fundflow.sink.pager.storms")(_named_timer(flush_storms))

        @app.on_before_shutdown.connect
        async def _close_pager_http(*_: Any, **__: Any) -> None:
            await pager.close_http()

    return wired


CLICKHOUSE = "clickhouse"
PAGER = "pager"


def _reporter(app: faust.App, name: str) -> Callable[[bool, str], None]:
    """Sink reachability to the worker's health (read by /readyz); the health tracker is attached after the
    sinks, so it is looked up when a sink reports."""
    def report(reachable: bool, detail: str) -> None:
        health = getattr(app, "fundflow_health", None)
        if health is not None:
            health.set_sink(name, reachable, detail)
    return report


def _release_unstored(events) -> None:
    """Let a stopping worker go without storing (ClickHouse down) and without losing the batch.

    On stop, Faust waits until every message in flight is acknowledged, then acknowledges what a take()
    batch holds on its way out. Setting `acked` on the messages directly, behind the consumer's back, ends
    that wait while keeping their offsets out of every commit: the next worker reads the batch again.
    """
    for event in events:
        event.message.acked = True
    log.warning("stopping with %d warnings not yet delivered: left uncommitted, re-read at next start",
                len(events))


def _named(fn: Callable[..., Any], name: str) -> Callable[..., Any]:
    """Faust names agents after their function; give each a distinct, readable name."""
    async def agent(stream):
        await fn(stream)
    agent.__name__ = agent.__qualname__ = name
    return agent


def _named_timer(fn: Callable[[], Any]) -> Callable[[], Any]:
    async def flush_storms() -> None:
        await fn()
    return flush_storms
