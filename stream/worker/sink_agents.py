"""Sink agents: the warnings topic (the outbox) delivered to ClickHouse and to the pager webhook.

The ClickHouse agent reads batches (`outbox_batches`: at most clickhouse_batch_size warnings, closed once the
oldest has waited clickhouse_batch_interval). A task stores each batch; another writes the evidence chain of
what was stored, on a connection of its own where the store has more than one, while the next batch is
stored; a batch's offsets are acknowledged only after both, so a committed offset always means a stored and
chained row. The pager agent only decides and queues each warning in the page ledger (durable); a thread
delivers the queue in order, retrying for as long as the webhook is away, and sends storm summaries once
their minute is over. Both agents run with concurrency 1 and tolerate duplicates (ReplacingMergeTree, page
ledger). No message, and no failure of a store or a webhook, ends an agent. Pages are sent from a thread with
an event loop of its own (sinks/page_delivery.py), so detection holding the worker's loop cannot time them out.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
from functools import partial
from dataclasses import dataclass, field
from typing import Any, Callable

import faust

from ..settings import Settings
from ..evidence.keys import ensure_signing_key
from ..sinks.base import RetryPolicy, RetryStopped, Sleep, retry_async
from ..sinks.chain import ChainItem, EvidenceChain
from ..sinks.dedupe import QUEUED, PageLedger
from ..sinks.page_delivery import PageDeliveryThread
from ..sinks.pager import PagerConfig, PagerSink
from ..sinks.factory import open_store
from ..clock import wall_clock_ms
from ..sinks.writer import ClickHouseSink
from ..model.warning import EarlyWarning
from .app import named_agent, raw_topic
from .deadletter import DeadLetter, Origin, normalize_headers
from .health import HealthTracker
from .outbox_batches import OutboxBatches, ack_all
from .publisher import DETECTOR_HEADER, EVIDENCE_HEADER, RULE_HEADER, Publisher, decode_evidence
from .tuning import LEDGER_RETRY_S, STORM_FLUSH_INTERVAL_S

log = logging.getLogger(__name__)

BAD_WARNING = "bad_warning"
UNSTORABLE_WARNING = "unstorable_warning"


@dataclass
class SinkAgents:
    """What `attach_sinks` wired, for health pages and tests."""

    clickhouse: ClickHouseSink
    pager: PagerSink | None
    chain: EvidenceChain | None = None
    bad_warnings: int = 0
    agents: list[Any] = field(default_factory=list)


def _decode(value: bytes | None) -> EarlyWarning:
    """A warning from the outbox; ValueError (with a bounded message) when the bytes are not one."""
    if value is None:
        raise ValueError("an empty record (tombstone)")
    return EarlyWarning.from_json(value)       # checks every field, severity and non-empty ids included


def chain_item(warning: EarlyWarning, message: Any) -> ChainItem:
    """A stored warning with its outbox coordinates and the evidence and rule text it was published with. A
    header that does not decode is logged and left out: the warning is chained with no events."""
    headers = dict(normalize_headers(getattr(message, "headers", None)))
    try:
        sources, omitted = decode_evidence(headers.get(EVIDENCE_HEADER))
    except ValueError as exc:
        log.error("warning %s: unreadable evidence header (%s); chained without its events", warning.warning_id, exc)
        sources, omitted = (), 0
    if omitted:
        log.warning("warning %s: %d cited events did not fit in its evidence header", warning.warning_id, omitted)
    rule_text = headers.get(RULE_HEADER, b"").decode("utf-8", "replace")
    settings_text = headers.get(DETECTOR_HEADER, b"").decode("utf-8", "replace")
    return ChainItem(int(message.partition), int(message.offset), warning, sources, rule_text, settings_text)


def attach_sinks(app: faust.App, settings: Settings, *, publisher: Publisher, health: HealthTracker,
                 sleep: Sleep = asyncio.sleep, clock: Callable[[], int] = wall_clock_ms) -> SinkAgents:
    """Add the ClickHouse agent (always) and the pager agent (when webhook_url is set) to `app`. Sinks report
    whether their destination answers to `health`, and dead-letter what they cannot deliver through
    `publisher`."""
    warnings_topic = raw_topic(app, settings.warnings_topic)
    policy = RetryPolicy.from_settings(settings)
    store = open_store(settings.clickhouse_url)
    # Closed at interpreter exit, after Faust's loop has stopped: an embedded chDB session left to the
    # interpreter's teardown can crash the process on its way out.
    atexit.register(store.close)
    sink = ClickHouseSink(store, batch_size=settings.clickhouse_batch_size, policy=policy, sleep=sleep, clock=clock,
                          stopping=lambda: bool(app.should_stop), on_status=partial(health.set_sink, CLICKHOUSE))
    chain = None
    if settings.evidence_chain:
        # Its own connection where the store allows one, so a chain append never holds up the next insert.
        chain_store = store.for_another_thread()
        if chain_store is not store:
            atexit.register(chain_store.close)
        chain = EvidenceChain(chain_store, ensure_signing_key(settings.evidence_signing_key, settings.data_dir),
                              every=settings.evidence_checkpoint_records,
                              interval_ms=settings.evidence_checkpoint_interval, clock=clock)
    wired = SinkAgents(clickhouse=sink, pager=None, chain=chain)
    # The chain has one writer at a time: the appends of stored batches and the signing timer.
    chain_lock = asyncio.Lock()

    async def chain_batch(stored: list[tuple[EarlyWarning, Any]]) -> None:
        if chain is None or not stored:
            return
        items = [chain_item(warning, message) for warning, message in stored]
        try:
            await retry_async(lambda: sink.call(chain.append, items), policy, sleep=sleep,
                              what=f"chaining {len(items)} warnings", stopping=lambda: bool(app.should_stop))
        except (asyncio.CancelledError, RetryStopped):
            raise
        except Exception:  # noqa: BLE001 - a defect, not the store: the warnings stay stored, audit shows them unchained
            log.exception("could not chain %d stored warnings (%s...); `fundflow evidence audit` counts them as "
                          "unchained", len(items), items[0].warning.warning_id)
    # By default Faust waits, on stop and on rebalance, until every message in flight is acknowledged: with
    # ClickHouse down that wait never ends. Without it Faust commits what is acknowledged (stored) and
    # re-reads the rest after the restart or rebalance; every fundflow consumer tolerates re-reads.
    app.conf.stream_wait_empty = False

    async def send_dead_letter(key: bytes | None, value: bytes | None, reason: str, error: str,
                               origin: Origin) -> None:
        await publisher.send_dead_letter(DeadLetter(key=key, value=value, reason=reason, error=error, origin=origin))

    async def store_one_by_one(decoded: list[tuple[EarlyWarning, Any]], exc: Exception
                               ) -> list[tuple[EarlyWarning, Any]]:
        """A batch the store failed on with an error that is not the store's (a defect, or a value it cannot
        take): each warning alone, and the ones that still fail dead-lettered, so one row cannot block the
        outbox for good."""
        log.error("storing a batch of %d warnings failed (%s: %s); storing them one by one", len(decoded),
                  type(exc).__name__, str(exc)[:300])
        stored = []
        for warning, message in decoded:
            try:
                await sink.write([warning])
                stored.append((warning, message))
            except (asyncio.CancelledError, RetryStopped):
                raise
            except Exception as single:  # noqa: BLE001 - see the docstring
                wired.bad_warnings += 1
                await send_dead_letter(message.key, message.value, UNSTORABLE_WARNING,
                                       f"{type(single).__name__}: {str(single)[:500]}",
                                       Origin(message.topic, message.partition, message.offset))
        return stored

    async def store_batches(stream, batches: OutboxBatches, to_chain: asyncio.Queue) -> None:
        """Each batch stored, then handed to `chain_batches` (which acknowledges it), or acknowledged here
        when there is no chain. Ends only by cancellation or a defect."""
        while True:
            events = await batches.next()
            decoded: list[tuple[EarlyWarning, Any]] = []
            for event in events:
                message = event.message
                try:
                    decoded.append((_decode(message.value), message))
                except ValueError as exc:
                    wired.bad_warnings += 1
                    await send_dead_letter(message.key, message.value, BAD_WARNING,
                                           f"not a warning: {str(exc)[:500]}",
                                           Origin(message.topic, message.partition, message.offset))
            try:
                try:
                    await sink.write([warning for warning, _ in decoded])
                    stored = decoded
                except (asyncio.CancelledError, RetryStopped):
                    raise
                except Exception as exc:  # noqa: BLE001 - isolated row by row; never kills the agent
                    stored = await store_one_by_one(decoded, exc)
            except asyncio.CancelledError:
                _release_unstored(events)
                raise
            except RetryStopped:
                _release_unstored(events)
                await asyncio.Event().wait()  # nothing more to do until the worker cancels the agent
            if chain is None:
                await ack_all(stream, events)
            else:
                await to_chain.put((stored, events))

    async def chain_batches(stream, to_chain: asyncio.Queue) -> None:
        """The chain of what `store_batches` stored, every batch waiting at the time in one append, then
        their offsets acknowledged in order. Runs beside the next inserts."""
        while True:
            handed = [await to_chain.get()]
            while not to_chain.empty():
                handed.append(to_chain.get_nowait())
            events = [event for _, batch_events in handed for event in batch_events]
            try:
                async with chain_lock:
                    await chain_batch([pair for stored, _ in handed for pair in stored])
            except asyncio.CancelledError:
                _release_unstored(events)
                raise
            except RetryStopped:
                _release_unstored(events)
                await asyncio.Event().wait()
            await ack_all(stream, events)

    async def store_warnings(stream) -> None:
        if not sink.schema_ready:
            try:
                await sink.ensure_schema()  # at start, so the table exists before the first warning
                if chain is not None:
                    await retry_async(lambda: sink.call(chain.ensure_schema), policy, sleep=sleep,
                                      what="creating the evidence tables", stopping=lambda: bool(app.should_stop))
            except RetryStopped:
                return
        stream.enable_acks = False     # offsets are acknowledged once stored and chained (`ack_all`)
        batches: OutboxBatches = OutboxBatches(max_size=settings.clickhouse_batch_size,
                                               linger_s=settings.clickhouse_batch_interval / 1000)
        to_chain: asyncio.Queue = asyncio.Queue(CHAIN_QUEUE_DEPTH)
        workers = [asyncio.ensure_future(store_batches(stream, batches, to_chain))]
        if chain is not None:
            workers.append(asyncio.ensure_future(chain_batches(stream, to_chain)))
        try:
            async for event in stream.events():
                await _put_unless_failed(batches.put(event), workers)
        finally:
            for worker in workers:
                worker.cancel()

    store_agent = app.agent(warnings_topic, name="fundflow.sink.clickhouse", concurrency=1)(
        named_agent(store_warnings, "store_warnings"))
    wired.agents.append(store_agent)

    if chain is not None:
        async def forget_chain_heads(*_: Any, **__: Any) -> None:
            # Another worker may continue these partitions' chains before this one owns them again.
            chain.forget()
        app.on_partitions_revoked.connect(forget_chain_heads)

        async def sign_chain_tails() -> None:
            """Sign the partitions whose unsigned tail is old enough, even when no new warning arrives."""
            if not sink.schema_ready or chain_lock.locked():
                return
            try:       # the outbox partitions this worker owns: a restarted worker signs its tail before new input
                chain.partitions = {tp.partition for tp in app.consumer.assignment()
                                     if tp.topic == settings.warnings_topic}
            except Exception:  # noqa: BLE001 - no consumer yet: the partitions seen in batches are enough
                pass
            async with chain_lock:
                try:
                    await sink.call(chain.sign_due)
                except Exception as exc:  # noqa: BLE001 - the next tick or batch tries again
                    log.warning("signing the evidence chain failed: %s", exc)

        app.timer(max(settings.evidence_checkpoint_interval / 2000, 0.5))(sign_chain_tails)

    if settings.webhook_url:
        ledger_origin = Origin(settings.warnings_topic, -1, -1)    # a page is dead-lettered from the ledger
        worker_loop: list[asyncio.AbstractEventLoop] = []           # the loop the producer belongs to

        async def page_dead_letter(warning: EarlyWarning, reason: str, detail: str) -> None:
            # Called on the delivery thread: the letter is sent by the worker's producer, on the worker's loop.
            letter = send_dead_letter(warning.warning_id.encode(), warning.to_json(), reason, detail, ledger_origin)
            await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(letter, worker_loop[0]))

        pager = PagerSink(PagerConfig.from_settings(settings), PageLedger.in_data_dir(settings.data_dir),
                          page_dead_letter, policy=RetryPolicy.from_settings(settings), sleep=sleep, clock=clock,
                          on_status=partial(health.set_sink, PAGER), stopping=lambda: bool(app.should_stop))
        wired.pager = pager
        delivery = PageDeliveryThread(pager, idle_s=STORM_FLUSH_INTERVAL_S)

        async def page_warnings(stream) -> None:
            # Deciding and queueing only (into the durable ledger): the offset is committed once the page is
            # queued, and a webhook outage never holds up this agent.
            async for event in stream.events():
                try:
                    warning = _decode(event.message.value)
                except ValueError:
                    continue  # the ClickHouse agent dead-letters it; one letter per bad message is enough
                while True:
                    try:
                        outcome = await pager.handle(warning)
                        break
                    except asyncio.CancelledError:
                        raise
                    except Exception:  # noqa: BLE001 - the ledger (a local file) failed: wait, never drop
                        log.exception("could not queue the page of %s; trying again", warning.warning_id)
                        await asyncio.sleep(LEDGER_RETRY_S)
                if outcome == QUEUED:
                    delivery.wake()

        wired.agents.append(app.agent(warnings_topic, name="fundflow.sink.pager", concurrency=1)(
            named_agent(page_warnings, "page_warnings")))

        async def start_page_delivery() -> None:
            worker_loop.append(asyncio.get_running_loop())
            delivery.start()

        app.task(start_page_delivery)

        @app.on_before_shutdown.connect
        async def _stop_page_delivery(*_: Any, **__: Any) -> None:
            if delivery.alive and not await asyncio.to_thread(delivery.stop, settings.webhook_timeout / 1000 + 1):
                log.warning("page delivery did not stop in time; the pages it was sending stay queued")

    return wired


CLICKHOUSE = "clickhouse"
PAGER = "pager"
CHAIN_QUEUE_DEPTH = 4       # stored batches waiting for their chain before the next insert waits too


async def _put_unless_failed(put: Any, workers: list[asyncio.Future]) -> None:
    """Hand an event over, unless a worker task ended meanwhile: they end only by a defect, which is raised
    here so that it ends the agent as it did when the agent stored batches itself."""
    putting = asyncio.ensure_future(put)
    done, _ = await asyncio.wait({putting, *workers}, return_when=asyncio.FIRST_COMPLETED)
    if putting not in done:
        putting.cancel()
    for worker in workers:
        if worker in done:
            worker.result()
            raise RuntimeError("a sink task ended without an error")


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
