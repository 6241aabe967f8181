"""WindowedLists schedules expiry once per key; what it holds after each expire must be what a plain filter of
every key's items keeps, whatever the order of item times (late items, items already past the cutoff)."""

from __future__ import annotations

import random
from operator import itemgetter

import pytest

from stream.detection.windowed import WindowedLists


class _Reference:
    """The contract, plainly: every key's items, the oldest added leaving past the cap, and at each expire every
    item older than the cutoff gone."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.items: dict[str, list] = {}

    def add(self, key: str, item: tuple) -> None:
        items = self.items.setdefault(key, [])
        items.append(item)
        if len(items) > self.cap:
            del items[0]

    def expire(self, cutoff: int) -> None:
        for key in list(self.items):
            kept = [item for item in self.items[key] if item[0] >= cutoff]
            if kept:
                self.items[key] = kept
            else:
                del self.items[key]


@pytest.mark.parametrize("seed", range(12))
def test_holds_what_a_filter_of_every_key_keeps(seed: int) -> None:
    rng = random.Random(seed)
    cap = rng.choice((2, 3, 1000))
    lists, reference = WindowedLists(cap, itemgetter(0)), _Reference(cap)
    keys = [f"k{i}" for i in range(rng.choice((3, 20, 200)))]
    now, cutoff, serial = 0, 0, 0
    for _ in range(4_000):
        if rng.random() < 0.1:
            cutoff = max(cutoff, now - rng.randrange(50, 400))
            lists.expire(cutoff)
            reference.expire(cutoff)
            assert len(lists) == len(reference.items)
            for key in keys:
                assert lists.items(key) == tuple(reference.items.get(key, ()))
                assert lists.count(key) == len(reference.items.get(key, ()))
            continue
        now += rng.randrange(0, 20)
        # Mostly recent times, some far back (late items, some older than the cutoff already).
        ts = now - (rng.randrange(0, 600) if rng.random() < 0.3 else rng.randrange(0, 20))
        serial += 1
        item = (ts, serial)
        key = rng.choice(keys)
        lists.add(key, item)
        reference.add(key, item)


def test_an_older_item_added_later_leaves_at_its_own_cutoff() -> None:
    lists = WindowedLists(10, itemgetter(0))
    lists.add("a", (100, "new"))
    lists.add("a", (10, "late"))
    lists.expire(50)
    assert lists.items("a") == ((100, "new"),)


def test_a_key_partly_expired_is_scheduled_again() -> None:
    lists = WindowedLists(10, itemgetter(0))
    lists.add("a", (10, "first"))
    lists.add("a", (100, "second"))
    lists.expire(50)
    assert lists.items("a") == ((100, "second"),)
    lists.expire(150)
    assert lists.items("a") == ()
    assert len(lists) == 0


def test_one_expiry_entry_per_key_when_times_arrive_in_order() -> None:
    lists = WindowedLists(1000, itemgetter(0))
    for ts in range(500):
        lists.add(f"k{ts % 5}", (ts, ts))
    assert len(lists._expiry) == 5
