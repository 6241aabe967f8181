"""Rebuilding detector state from the input log when partitions are assigned (docs/architecture.md, invariant 6).

Why log replay and not snapshots: the detector's state is, by design, a function of the last `window` of
the input log, and the log is already durable, ordered and retained for longer than the window. Replaying
it needs no second store, no snapshot format to version across releases, and cannot disagree with the
log; a snapshot would only shorten the replay and would add a consistency problem (snapshot and offsets
written at different moments). Replay cost is one pass over the window's events per assignment; snapshots
become worth it only if that pass gets longer than an operator will wait for readiness.

What is replayed: for each assigned input partition, the records from the start of the window up to the
group's committed offset C (exclusive). Live consumption resumes at C, so every offset is processed exactly
once per assignment: below C by the replay, from C on by the live stream. That also covers the events
Faust acknowledged while they were still held in the aligner when the worker died: they are below C.
The warnings the replay raises are published again: sinks are idempotent (ClickHouse dedupes on
warning_id, the pager keeps a record of paged ids), and re-publishing is what makes a warning that was
never published before a crash safe.

Where the window starts: the last record below C gives the newest time T (the smaller of its Kafka
timestamp and its event time, so a back-fill with old event times is covered); `offsets_for_times(T -
window - allowed_lateness)` gives the first offset to read. Events older than the window are dropped by the
detector anyway, so reading too much is only slower, never wrong (a broker that ignores the timestamp and
answers the log start costs exactly that).
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

from ..errors import EventError, FundflowError
from ..model.events import Event, parse_event
from ..detection.jump_guard import JumpGuard
from .checkpoint import Snapshot, SnapshotLoader, SnapshotRefused
from .deadletter import Origin, normalize_headers
from .handler import DetectorLike
from .pipeline import Pipeline
from .tuning import READ_TIMEOUT_S, RETRY_DELAY_S

log = logging.getLogger(__name__)



class RecoveryError(FundflowError):
    """The input log could not be read back for a rebuild."""


@dataclass(frozen=True)
class LogRecord:
    """One input record read back for a replay."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: int
    headers: tuple[tuple[str, bytes], ...] = ()


@dataclass(frozen=True)
class RebuildReport:
    partitions: int
    records: int
    events: int
    seconds: float
    read_seconds: float = 0.0       # of which reading the log back
    from_snapshot: bool = False     # started from a snapshot, replaying only the log after it
    snapshot_age_s: float = 0.0


def event_or_none(value: bytes | None) -> Event | None:
    try:
        return parse_event(value if value is not None else b"null")
    except EventError:
        return None


def event_time_or_none(value: bytes | None) -> int | None:
    event = event_or_none(value)
    return event.ts if event is not None else None


def window_lookup_time(last_timestamp: int, last_event_ts: int | None, span_ms: int) -> int:
    """The Kafka timestamp to look the window's first offset up with (never negative)."""
    newest = last_timestamp if last_event_ts is None else min(last_timestamp, last_event_ts)
    return max(0, newest - span_ms)


def merge_by_event_time(partitions: Iterable[Sequence[LogRecord]]) -> list[LogRecord]:
    """One sequence, each partition in log order, partitions interleaved by their progress in event time: the
    order a live run delivers when every partition keeps pace.

    A partition's progress is the event time its records have reached, judged by the same `JumpGuard` rule as
    live input: a far-ahead record the stream never confirms does not move it, or every later record of that
    partition would sort after all the others and the rebuild would detect something else than the live run.
    Unparseable records sort by their neighbours (the replay skips them)."""
    keyed = []
    for records in partitions:
        guard: JumpGuard[int] = JumpGuard()
        progress = -1
        rows = []
        for record in records:
            event = event_or_none(record.value)
            if event is not None:
                verdict = guard.offer(event.ts, event.event_id, event.ts, progress if progress >= 0 else None)
                progress = max([progress, *verdict.released])
            rows.append((progress, record))
        keyed.append(rows)
    return [record for _, record in heapq.merge(*keyed, key=lambda row: row[0])]


@dataclass(frozen=True)
class LogWindow:
    """What a rebuild read: records per partition, and the committed offset (where live input resumes) of
    every assigned partition, the log start where nothing was committed."""

    records: dict[tuple[str, int], list[LogRecord]]
    resume_at: dict[tuple[str, int], int]


async def read_window(bootstrap: Sequence[str], group_id: str, partitions: Sequence[tuple[str, int]], *,
                      span_ms: int, timeout_s: float = READ_TIMEOUT_S,
                      starts: dict[tuple[str, int], int] | None = None) -> LogWindow:
    """Per partition, the records from the window start (or from `starts`, a snapshot's positions) up to the
    group's committed offset (exclusive).

    A separate consumer with the group's id, manually assigned: it reads committed offsets but never joins
    the group and never commits. A start the log no longer holds raises SnapshotRefused.
    """
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=list(bootstrap), group_id=group_id, enable_auto_commit=False,
                                auto_offset_reset="earliest", client_id=f"{group_id}-rebuild",
                                fetch_max_wait_ms=50)   # a replay wants what is there now, not to wait for more
    await consumer.start()
    try:
        tps = [TopicPartition(topic, partition) for topic, partition in partitions]
        if not tps:
            return LogWindow({}, {})
        consumer.assign(tps)
        beginnings = await consumer.beginning_offsets(tps)
        ranges: dict[Any, tuple[int, int]] = {}
        resume_at: dict[tuple[str, int], int] = {}
        for tp in tps:
            committed = await consumer.committed(tp)
            key = (tp.topic, tp.partition)
            resume_at[key] = committed if committed is not None and committed > beginnings[tp] else beginnings[tp]
            if starts is not None:
                start = starts[key]
                if start < beginnings[tp]:
                    raise SnapshotRefused(f"the log of {tp.topic}[{tp.partition}] now starts at offset "
                                          f"{beginnings[tp]}, after the snapshot's position {start}")
                if start < resume_at[key]:
                    ranges[tp] = (start, resume_at[key])
                continue
            if committed is None or committed <= beginnings[tp]:
                continue
            start = await _window_start(consumer, tp, beginnings[tp], committed, span_ms)
            ranges[tp] = (start, committed)
        out: dict[tuple[str, int], list[LogRecord]] = {(tp.topic, tp.partition): [] for tp in ranges}
        for tp, (start, _) in ranges.items():
            consumer.seek(tp, start)
        remaining = set(ranges)
        deadline = time.monotonic() + timeout_s
        while remaining:
            if time.monotonic() > deadline:
                behind = {f"{tp.topic}[{tp.partition}]": ranges[tp][1] for tp in remaining}
                raise RecoveryError(f"could not read the input log up to the committed offsets {behind} "
                                    f"within {timeout_s:.0f}s")
            batches = await consumer.getmany(*remaining, timeout_ms=500)
            for tp, messages in batches.items():
                end = ranges[tp][1]
                out[(tp.topic, tp.partition)].extend(
                    LogRecord(m.topic, m.partition, m.offset, m.key, m.value, m.timestamp,
                              normalize_headers(m.headers)) for m in messages if m.offset < end)
            for tp in list(remaining):
                if await consumer.position(tp) >= ranges[tp][1]:
                    remaining.discard(tp)
        return LogWindow(out, resume_at)
    finally:
        await consumer.stop()


async def _window_start(consumer, tp, beginning: int, committed: int, span_ms: int) -> int:
    consumer.seek(tp, committed - 1)
    batch = await consumer.getmany(tp, timeout_ms=5000)
    last = next((m for m in batch.get(tp, []) if m.offset == committed - 1), None)
    if last is None:
        return beginning           # could not see the last record: read everything, the detector trims
    lookup = window_lookup_time(last.timestamp, event_time_or_none(last.value), span_ms)
    found = await consumer.offsets_for_times({tp: lookup})
    at = found.get(tp)
    return max(beginning, at.offset) if at is not None else beginning


async def partition_counts(bootstrap: Sequence[str], topics: Iterable[str]) -> dict[str, int]:
    """How many partitions each topic has (broker metadata; a topic not there yet counts 0)."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(bootstrap_servers=list(bootstrap), enable_auto_commit=False)
    await consumer.start()
    try:
        await consumer.topics()
        return {topic: len(consumer.partitions_for_topic(topic) or ()) for topic in topics}
    finally:
        await consumer.stop()


def partitions_elsewhere(topic_partitions: dict[str, int], assigned: Iterable[tuple[str, int]]) -> list[str]:
    """Input partitions this worker was not given (`topic[n]`): another member of the group holds them, and a
    detector that sees only part of the ledger raises wrong warnings."""
    mine = set(assigned)
    return [f"{topic}[{partition}]" for topic, count in sorted(topic_partitions.items())
            for partition in range(count) if (topic, partition) not in mine]


class StateRecovery:
    """Reacts to rebalances: revoke drops state, assignment rebuilds a fresh detector from the log.

    The rebuild runs as a task (not inside the rebalance callback) so a long replay does not hold up the
    group protocol; the pipeline's gate keeps live input waiting until it is done. The gate is needed
    anyway: Faust (`App._on_partitions_assigned`) sends the `on_partitions_assigned` signal after
    `tables.on_rebalance`, which wakes its table-recovery service, and that service resumes the paused
    partitions on its own schedule, so fetching may restart while the signal's receivers still run.
    """

    def __init__(self, pipeline: Pipeline, make_detector: Callable[[], DetectorLike], *,
                 bootstrap: Sequence[str], group_id: str, input_topics: Sequence[str], span_ms: int,
                 on_state: Callable[[bool, str], None] = lambda rebuilt, detail: None,
                 snapshots: SnapshotLoader | None = None) -> None:
        self.pipeline = pipeline
        self.snapshots = snapshots
        self.make_detector = make_detector
        self.bootstrap = list(bootstrap)
        self.group_id = group_id
        self.input_topics = tuple(input_topics)
        self.span_ms = span_ms
        self.on_state = on_state
        self.rebuilt = False
        self.last_report: RebuildReport | None = None
        self._task: asyncio.Task | None = None

    async def on_revoked(self, revoked: Iterable[Any]) -> None:
        """A join begins (the first one too, with nothing revoked)."""
        self._cancel()
        if self.snapshots is not None:
            self.snapshots.prefetch()        # unpickled while the coordinator forms the group
        self.pipeline.begin_generation()
        self._set_state(False, "partitions revoked; waiting for the next assignment")

    async def on_assigned(self, assigned: Iterable[Any]) -> None:
        self._cancel()
        generation = self.pipeline.begin_generation()
        partitions = sorted((tp.topic, tp.partition) for tp in assigned if tp.topic in self.input_topics)
        self._set_state(False, f"rebuilding from {len(partitions)} input partitions")
        self._task = asyncio.ensure_future(self._rebuild_until_done(generation, partitions))

    async def stop(self) -> None:
        self._cancel()

    def _cancel(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
        self._task = None

    def _set_state(self, rebuilt: bool, detail: str) -> None:
        self.rebuilt = rebuilt
        self.on_state(rebuilt, detail)

    async def _rebuild_until_done(self, generation: int, partitions: list[tuple[str, int]]) -> None:
        while generation == self.pipeline.generation:
            try:
                report = await self.rebuild(generation, partitions)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the broker may be briefly unreachable: try again
                log.error("state rebuild failed (%s); retrying in %.0fs", exc, RETRY_DELAY_S)
                self._set_state(False, f"rebuild failed: {exc}")
                await asyncio.sleep(RETRY_DELAY_S)
                continue
            if report is not None:
                self.last_report = report
                log.info("state rebuilt from %d input partitions%s: %d records, %d events replayed in %.2fs "
                         "(%.2fs reading the log)", report.partitions,
                         f" and the snapshot of {report.snapshot_age_s:.0f}s ago" if report.from_snapshot else "",
                         report.records, report.events, report.seconds, report.read_seconds)
                self._set_state(True, "")
            return

    async def rebuild(self, generation: int, partitions: list[tuple[str, int]]) -> RebuildReport | None:
        started = time.monotonic()
        # First, before any snapshot is loaded or log read: does this worker hold the whole input?
        elsewhere = partitions_elsewhere(await partition_counts(self.bootstrap, self.input_topics), partitions)
        if elsewhere:
            detail = (f"holds {len(partitions)} of {len(partitions) + len(elsewhere)} input partitions; "
                      f"{', '.join(elsewhere[:6])}{' ...' if len(elsewhere) > 6 else ''} are with another "
                      f"worker of group {self.group_id}. Detection state is not spread over workers yet "
                      f"(docs/partitioning.md): run one worker per group. Waiting for a rebalance that gives "
                      f"this worker every input partition; nothing is detected or committed meanwhile")
            log.error("not detecting: this worker %s", detail)
            self._set_state(False, detail)
            return None
        snapshot = await self._usable_snapshot(set(partitions))
        if snapshot is not None:
            self._set_state(False, f"restoring {len(partitions)} input partitions from the snapshot of "
                                   f"{(time.time() * 1000 - snapshot.written_ms) / 1000:.0f}s ago, replaying the "
                                   f"log after it")
        try:
            window = await read_window(self.bootstrap, self.group_id, partitions, span_ms=self.span_ms,
                                       starts=snapshot.positions if snapshot is not None else None)
        except SnapshotRefused as exc:
            log.warning("snapshot not used: %s; rebuilding from the log window", exc)
            snapshot = None
            window = await read_window(self.bootstrap, self.group_id, partitions, span_ms=self.span_ms)
        read_s = time.monotonic() - started
        merged = merge_by_event_time(window.records.values())
        history = ((r.value, r.key, Origin(r.topic, r.partition, r.offset, r.timestamp), r.headers) for r in merged)
        positions = dict(window.resume_at)
        if snapshot is not None:
            positions = {tp: max(offset, snapshot.positions[tp]) for tp, offset in positions.items()}
        done = await self.pipeline.rebuild(generation, self.make_detector, history, sources=partitions,
                                           restored=snapshot.state if snapshot is not None else None,
                                           positions=positions)
        if not done:
            return None
        return RebuildReport(partitions=len(partitions), records=len(merged), events=self.pipeline.rebuilt_events,
                             seconds=time.monotonic() - started, read_seconds=read_s,
                             from_snapshot=snapshot is not None,
                             snapshot_age_s=(time.time() * 1000 - snapshot.written_ms) / 1000 if snapshot else 0.0)

    async def _usable_snapshot(self, partitions: set[tuple[str, int]]) -> Snapshot | None:
        if self.snapshots is None:
            return None
        try:
            return await asyncio.to_thread(self.snapshots.load, partitions)
        except SnapshotRefused as exc:
            log.warning("snapshot not used: %s; rebuilding from the log window", exc)
            return None
