"""Recent items per key, windowed like the graph: what the device index and the identity arrivals both keep."""

from __future__ import annotations

import heapq
from typing import Callable, Generic, TypeVar

T = TypeVar("T")


class WindowedLists(Generic[T]):
    """At most `cap` items per key (the oldest added leaves first); an item leaves once its time (`time_of`,
    picklable, e.g. `operator.attrgetter("ts")`, since snapshots keep these) is before the window's cutoff.
    Lists, not deques: most keys hold one or two items."""

    def __init__(self, cap: int, time_of: Callable[[T], int]) -> None:
        self._items: dict[str, list[T]] = {}
        self._expiry: list[tuple[int, int, str]] = []
        self._seq = 0
        self._cap = cap
        self._time_of = time_of

    def add(self, key: str, item: T) -> None:
        items = self._items.get(key)
        if items is None:
            self._items[key] = [item]
        else:
            items.append(item)
            if len(items) > self._cap:
                del items[0]
        self._seq += 1
        heapq.heappush(self._expiry, (self._time_of(item), self._seq, key))

    def items(self, key: str) -> tuple[T, ...]:
        return tuple(self._items.get(key, ()))

    def count(self, key: str) -> int:
        """How many items `key` holds, some possibly past the cutoff not yet expired: at least what `items`
        keeps within the window, in O(1)."""
        return len(self._items.get(key, ()))

    def expire(self, cutoff: int) -> None:
        heap, time_of = self._expiry, self._time_of
        while heap and heap[0][0] < cutoff:
            _, _, key = heapq.heappop(heap)
            items = self._items.get(key)
            if items is None:
                continue
            kept = [item for item in items if time_of(item) >= cutoff]
            if not kept:
                del self._items[key]
            elif len(kept) != len(items):
                self._items[key] = kept

    def __len__(self) -> int:
        return len(self._items)
