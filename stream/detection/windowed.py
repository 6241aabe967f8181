"""Recent items per key, windowed like the graph: what the device index and the identity arrivals both keep."""

from __future__ import annotations

import heapq
from typing import Callable, Generic, TypeVar

T = TypeVar("T")


class WindowedLists(Generic[T]):
    """At most `cap` items per key (the oldest added leaves first); an item leaves once its time (`time_of`,
    picklable, e.g. `operator.attrgetter("ts")`, since snapshots keep these) is before the window's cutoff.
    Lists, not deques: most keys hold one or two items.

    The expiry heap holds one entry per key, not one per item: (due, key), where `due` is no later than the
    key's oldest item (`_due` says which entry of a key is current; others are stale and skipped). A key is
    scheduled again only when an item older than everything it holds arrives, or when expiry keeps some of its
    items. Every item older than a cutoff still leaves at that cutoff's `expire`, as with an entry per item, for
    about 100 bytes less per item (a tuple, a sequence number and a heap slot)."""

    def __init__(self, cap: int, time_of: Callable[[T], int]) -> None:
        self._items: dict[str, list[T]] = {}
        self._due: dict[str, int] = {}
        self._expiry: list[tuple[int, str]] = []
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
        time = self._time_of(item)
        due = self._due.get(key)
        if due is None or time < due:
            self._due[key] = time
            heapq.heappush(self._expiry, (time, key))

    def items(self, key: str) -> tuple[T, ...]:
        return tuple(self._items.get(key, ()))

    def count(self, key: str) -> int:
        """How many items `key` holds, some possibly past the cutoff not yet expired: at least what `items`
        keeps within the window, in O(1)."""
        return len(self._items.get(key, ()))

    def expire(self, cutoff: int) -> None:
        heap, time_of, due_of = self._expiry, self._time_of, self._due
        while heap and heap[0][0] < cutoff:
            due, key = heapq.heappop(heap)
            if due_of.get(key) != due:
                continue                # stale: the key was scheduled earlier since, or left
            items = self._items[key]
            kept = [item for item in items if time_of(item) >= cutoff]
            if not kept:
                del self._items[key]
                del due_of[key]
                continue
            if len(kept) != len(items):
                self._items[key] = kept
            due = due_of[key] = min(time_of(item) for item in kept)
            heapq.heappush(heap, (due, key))

    def __len__(self) -> int:
        return len(self._items)
