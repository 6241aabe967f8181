"""Event-time alignment of several input partitions before detection.

Faust consumes `fundflow.disbursements` and `fundflow.transfers` (and their partitions) independently, so
arrival order across them depends on fetch timing: a back-fill can deliver an hour of transfers before the
disbursement they spend. Fund tracing needs the disbursement first. The aligner holds events and releases
them in event-time order once every active source has moved past them (the low watermark over sources, as
in Flink), which makes the detector's input order a function of the event log, not of fetch timing.

A source that has sent nothing for `idle_after_ms` of wall-clock time stops holding the others back (a
quiet disbursements topic must not delay transfer warnings). That wall-clock rule only matters when a
source is genuinely silent; a busy replay is ordered by event time alone.
"""

from __future__ import annotations

import heapq
import itertools
from typing import Callable, Generic, Hashable, TypeVar

T = TypeVar("T")


class EventTimeAligner(Generic[T]):
    def __init__(self, *, idle_after_ms: int = 1000, max_pending: int = 200_000,
                 clock: Callable[[], int]) -> None:
        self._idle_after_ms = idle_after_ms
        self._max_pending = max_pending
        self._clock = clock
        self._heap: list[tuple[int, int, T]] = []
        self._seq = itertools.count()
        self._source_max_ts: dict[Hashable, int] = {}
        self._source_seen_at: dict[Hashable, int] = {}
        self.forced_releases = 0     # events released early because max_pending was reached

    def __len__(self) -> int:
        return len(self._heap)

    def add(self, source: Hashable, ts: int, item: T) -> None:
        heapq.heappush(self._heap, (ts, next(self._seq), item))
        if ts > self._source_max_ts.get(source, -1):
            self._source_max_ts[source] = ts
        self._source_seen_at[source] = self._clock()

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
        """Events that are safe to process now, in (event time, arrival) order."""
        if not self._heap:
            return []
        watermark = self.low_watermark()
        if watermark is None:          # every source idle: nothing more is coming soon
            return self.flush()
        out: list[T] = []
        heap = self._heap
        while heap and heap[0][0] <= watermark:
            out.append(heapq.heappop(heap)[2])
        while len(heap) > self._max_pending:
            out.append(heapq.heappop(heap)[2])
            self.forced_releases += 1
        return out

    def flush(self) -> list[T]:
        """Everything held, in order (shutdown, or all sources idle)."""
        out = [entry[2] for entry in sorted(self._heap)] if self._heap else []
        self._heap.clear()
        return out
