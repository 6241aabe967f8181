"""The outbox in batches for the ClickHouse agent: a batch closes once its oldest warning has waited the linger,
warnings that waited through the previous batch go at once, a full batch goes at once, and a full hand-over
holds the reader back."""

from __future__ import annotations

import asyncio
import time

import pytest

from stream.worker.outbox_batches import OutboxBatches


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_items_that_waited_the_linger_already_go_at_once():
    async def run():
        clock = Clock()
        batches = OutboxBatches(max_size=10, linger_s=60.0, clock=clock)
        await batches.put("a")
        await batches.put("b")
        clock.now += 61.0                    # they waited while the previous batch was stored
        started = time.monotonic()
        batch = await batches.next()
        return batch, time.monotonic() - started
    batch, took = asyncio.run(run())
    assert batch == ["a", "b"]
    assert took < 5.0, "a batch whose oldest item waited the linger must not wait a linger again"


def test_a_batch_waits_for_more_until_its_first_item_has_waited_the_linger():
    async def run():
        batches = OutboxBatches(max_size=10, linger_s=0.3)
        await batches.put("a")

        async def later():
            await asyncio.sleep(0.05)
            await batches.put("b")
        putting = asyncio.ensure_future(later())
        started = time.monotonic()
        batch = await batches.next()
        await putting
        await batches.put("c")               # after the batch closed: the next one
        return batch, time.monotonic() - started, await batches.next()
    batch, took, following = asyncio.run(run())
    assert batch == ["a", "b"]
    assert took >= 0.25
    assert following == ["c"]


def test_the_linger_counts_from_the_first_item_not_from_the_call():
    async def run():
        clock = Clock()
        batches = OutboxBatches(max_size=10, linger_s=10.0, clock=clock)
        await batches.put("a")
        clock.now += 9.9                     # 0.1 s of its linger left
        started = time.monotonic()
        batch = await batches.next()
        return batch, time.monotonic() - started
    batch, took = asyncio.run(run())
    assert batch == ["a"]
    assert 0.05 <= took < 5.0


def test_a_full_batch_goes_at_once_and_the_rest_waits_for_the_next():
    async def run():
        batches = OutboxBatches(max_size=3, linger_s=60.0)
        for item in "abc":
            await batches.put(item)
        reader = asyncio.ensure_future(batches.put("d"))    # the hand-over holds max_size: this one waits
        await asyncio.sleep(0.05)
        blocked = not reader.done()
        first = await asyncio.wait_for(batches.next(), 5.0)
        await asyncio.wait_for(reader, 5.0)
        batches.linger_s = 0.0
        return blocked, first, await asyncio.wait_for(batches.next(), 5.0)
    blocked, first, following = asyncio.run(run())
    assert blocked
    assert first == ["a", "b", "c"]
    assert following == ["d"]


def test_a_batch_size_must_be_positive():
    with pytest.raises(ValueError, match="positive batch size"):
        OutboxBatches(max_size=0, linger_s=1.0)
