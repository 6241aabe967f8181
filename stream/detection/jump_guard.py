"""Telling a wrong timestamp from a real jump in event time.

One event dated a week ahead (a unit or clock error) must not drag the watermark forward, or every later
event would look too old: the parser refuses events more than a day past the watermark. But a refused
event never moves the watermark, so after a genuine quiet day (a weekend without traffic, a gap in a
historical ledger) that rule alone would refuse everything that follows, forever.

The guard therefore holds far-ahead events instead of refusing them at once. If the stream carries on at
the old time, the held events were wrong and are refused (dead-lettered, with the reason). If the next
events agree with them (`confirm_after` far-ahead events within a day of each other), the stream really
jumped, and they are all released in arrival order. Nothing is lost either way, and the decision depends
on the event log alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, TypeVar

from ..errors import EventError
from ..model.events import MAX_FUTURE_MS, check_not_ahead

T = TypeVar("T")


@dataclass
class Verdict(Generic[T]):
    """What the guard decided for the items offered so far: release these, refuse those (with why)."""

    released: list[T] = field(default_factory=list)
    refused: list[tuple[T, EventError]] = field(default_factory=list)


class JumpGuard(Generic[T]):
    def __init__(self, *, confirm_after: int = 3) -> None:
        if confirm_after < 1:
            raise ValueError("confirm_after must be at least 1")
        self._confirm_after = confirm_after
        self._held: list[tuple[int, str | None, T]] = []
        self.jumps_confirmed = 0

    @property
    def holding(self) -> int:
        return len(self._held)

    def held(self) -> list[T]:
        return [entry[2] for entry in self._held]

    def passes(self, ts: int, watermark: int | None) -> bool:
        """True when `offer` would release just this item and refuse nothing: nothing is held and `ts` is not
        far ahead. The common case, which a caller can then handle without building a verdict."""
        return not self._held and (watermark is None or ts <= watermark + MAX_FUTURE_MS)

    def offer(self, ts: int, event_id: str | None, item: T, watermark: int | None) -> Verdict[T]:
        verdict: Verdict[T] = Verdict()
        if watermark is None or ts <= watermark + MAX_FUTURE_MS:
            self._refuse_held(watermark, verdict)
            verdict.released.append(item)
            return verdict
        if self._held and abs(ts - self._held[0][0]) > MAX_FUTURE_MS:
            # far ahead, but not where the held events are: they do not confirm each other
            self._refuse_held(watermark, verdict)
        self._held.append((ts, event_id, item))
        if len(self._held) >= self._confirm_after:
            verdict.released.extend(entry[2] for entry in self._held)
            self._held.clear()
            self.jumps_confirmed += 1
        return verdict

    def flush(self, watermark: int | None) -> Verdict[T]:
        """End of input: held events were never confirmed by what followed."""
        verdict: Verdict[T] = Verdict()
        self._refuse_held(watermark, verdict)
        return verdict

    def _refuse_held(self, watermark: int | None, verdict: Verdict[T]) -> None:
        for ts, event_id, item in self._held:
            try:
                check_not_ahead(ts, watermark if watermark is not None else ts, event_id)
            except EventError as exc:
                verdict.refused.append((item, exc))
            else:                         # the stream caught up with it meanwhile
                verdict.released.append(item)
        self._held.clear()
