"""Event-time alignment of several input partitions before detection.

Faust consumes `fundflow.disbursements` and `fundflow.transfers` (and their partitions) independently, so
arrival order across them depends on fetch timing: a back-fill can deliver an hour of transfers before the
disbursement they spend. Fund tracing needs the disbursement first. The aligner holds events and releases
them in event-time order once every active source has moved past them (the low watermark over sources, as
in Flink), which makes the detector's input order a function of the event log, not of fetch timing.

A source that has sent nothing for `idle_after_ms` of wall-clock time stops holding the others back (a
quiet disbursements topic must not delay transfer warnings), but only for events that have themselves
waited `idle_after_ms`. Judging a source idle at the moment an event arrives would be wrong exactly when
it matters: after a quiet spell, a burst (a back-fill, a producer catching up) delivers a transfer a few
milliseconds before the disbursement it spends, from a partition that looked idle a moment ago. So a quiet
source costs an event at most `idle_after_ms` of extra latency, and never its order. That wall-clock rule
only matters when a source is genuinely silent; a busy replay is ordered by event time alone.
"""

from __future__ import annotations

import heapq
import itertools
from typing import Callable, Generic, Hashable, Iterable, TypeVar

T = TypeVar("T")


class EventTimeAligner(Generic[T]):
    def __init__(self, *, idle_after_ms: int = 1000, max_pending: int = 200_000,
                 clock: Callable[[], int]) -> None:
        self._idle_after_ms = idle_after_ms
        self._max_pending = max_pending
        self._clock = clock
        self._heap: list[tuple[int, int, int, T]] = []     # (event time, arrival seq, arrived at, item)
        self._seq = itertools.count()
        self._source_max_ts: dict[Hashable, int] = {}
        self._source_seen_at: dict[Hashable, int] = {}
        self.forced_releases = 0     # events released early because max_pending was reached

    def __len__(self) -> int:
        return len(self._heap)

    def add(self, source: Hashable, ts: int, item: T) -> None:
        now = self._clock()
        heapq.heappush(self._heap, (ts, next(self._seq), now, item))
        if ts > self._source_max_ts.get(source, -1):
            self._source_max_ts[source] = ts
        self._source_seen_at[source] = now

    def expect(self, source: Hashable) -> None:
        """A source that will deliver (an assigned partition) holds events back before its first event too,
        for idle_after: otherwise the first event after a start is released before its partners arrive."""
        self._source_max_ts.setdefault(source, -1)
        self._source_seen_at.setdefault(source, self._clock())

    def seen(self, sources: Iterable[Hashable]) -> None:
        """These sources were just read (a batch of theirs is done): their idle time starts now. Without this, a
        batch that takes longer than idle_after to detect would make its own sources look idle at the next
        tick, and release what they still hold back out of order."""
        now = self._clock()
        for source in sources:
            if source in self._source_seen_at:
                self._source_seen_at[source] = now

    def forget(self, source: Hashable) -> None:
        """A source went away (partition revoked): it no longer holds the watermark."""
        self._source_max_ts.pop(source, None)
        self._source_seen_at.pop(source, None)

    def low_watermark(self) -> int | None:
        """Event time up to which every active source has delivered; None if no source is active."""
        now = self._clock()
        active = [max_ts for source, max_ts in self._source_max_ts.items()
                  if now - self._source_seen_at[source] < self._idle_after_ms]
        return min(active) if active else None

    def release(self) -> list[T]:
        """Events that are safe to process now, in (event time, arrival) order.

        The oldest held event goes when no source holds it back: a source holds an event while it has not
        reached the event's time and has been heard from, or the event arrived, less than idle_after ago.
        """
        out: list[T] = []
        heap = self._heap
        now = self._clock()
        # Every source has reached this time: nothing up to it can be held (the common case, checked without
        # looking at each source for each event).
        reached = min(self._source_max_ts.values()) if self._source_max_ts else None
        while heap and ((reached is not None and heap[0][0] <= reached) or not self._held(heap[0][0], heap[0][2], now)):
            out.append(heapq.heappop(heap)[3])
        while len(heap) > self._max_pending:
            out.append(heapq.heappop(heap)[3])
            self.forced_releases += 1
        return out

    def _held(self, ts: int, arrived: int, now: int) -> bool:
        idle_after = self._idle_after_ms
        seen_at = self._source_seen_at
        return any(max_ts < ts and now - max(seen_at[source], arrived) < idle_after
                   for source, max_ts in self._source_max_ts.items())

    def source_times(self) -> dict[Hashable, int]:
        """The newest event time each source has delivered (-1: nothing yet)."""
        return dict(self._source_max_ts)

    def held(self) -> list[T]:
        """The items waiting, in no particular order (what a snapshot must not count as detected)."""
        return [entry[3] for entry in self._heap]

    def flush(self) -> list[T]:
        """Everything held, in order (shutdown, or all sources idle)."""
        out = [entry[3] for entry in sorted(self._heap, key=lambda entry: entry[:2])] if self._heap else []
        self._heap.clear()
        return out
