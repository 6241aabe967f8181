"""The hand-over of fetched input records to the input agent: batches in order, a rebalance drops what was
fetched before it, and a full queue holds the fetch loop back."""

from __future__ import annotations

import asyncio

from aiokafka.structs import ConsumerRecord, TopicPartition

from stream.worker.batches import InputBatches
from stream.worker.deadletter import Origin

TRANSFERS = TopicPartition("fundflow.transfers", 2)
DISBURSEMENTS = TopicPartition("fundflow.disbursements", 0)


def record(tp: TopicPartition, offset: int, timestamp: int = 1_772_446_500_000, headers=()) -> ConsumerRecord:
    return ConsumerRecord(tp.topic, tp.partition, offset, timestamp, 0, b"k", b"v%d" % offset, None, 1, 2,
                          list(headers))


def test_a_fetch_becomes_one_batch_with_its_origins_headers_and_offsets():
    async def run():
        batches = InputBatches([TRANSFERS.topic, DISBURSEMENTS.topic])
        await batches.put(batches.epoch, {TRANSFERS: [record(TRANSFERS, 7, headers=[("h", b"1")]),
                                                      record(TRANSFERS, 8, timestamp=-1)],
                                          DISBURSEMENTS: [record(DISBURSEMENTS, 3)]})
        return await batches.get(), batches

    batch, batches = asyncio.run(run())
    assert [m[0] for m in batch.messages] == [b"v7", b"v8", b"v3"]
    assert batch.messages[0] == (b"v7", b"k", Origin(TRANSFERS.topic, 2, 7, 1_772_446_500_000), (("h", b"1"),))
    assert batch.messages[1][2].timestamp == -1          # no Kafka timestamp: -1, as detection expects
    assert batch.offsets == {TRANSFERS: [7, 8], DISBURSEMENTS: [3]}
    assert batches.is_current(batch) and (batches.batches, batches.records) == (1, 3)


def test_a_rebalance_drops_queued_batches_and_those_fetched_before_it():
    async def run():
        batches = InputBatches([TRANSFERS.topic])
        fetched_in = batches.epoch
        await batches.put(fetched_in, {TRANSFERS: [record(TRANSFERS, 1)]})          # queued
        batches.reset()                                                             # partitions revoked
        await batches.put(fetched_in, {TRANSFERS: [record(TRANSFERS, 2)]})          # fetched before the reset
        await batches.put(batches.epoch, {TRANSFERS: [record(TRANSFERS, 1)]})       # read again after the seek
        return await batches.get(), batches

    batch, batches = asyncio.run(run())
    assert batch.offsets == {TRANSFERS: [1]} and batches.is_current(batch)
    assert batches.dropped == 2


def test_a_batch_taken_before_a_rebalance_is_no_longer_current():
    async def run():
        batches = InputBatches([TRANSFERS.topic])
        await batches.put(batches.epoch, {TRANSFERS: [record(TRANSFERS, 1)]})
        batch = await batches.get()
        batches.reset()
        return batches.is_current(batch)

    assert asyncio.run(run()) is False


def test_the_fetch_loop_waits_while_the_agent_is_a_batch_behind():
    async def run():
        batches = InputBatches([TRANSFERS.topic], depth=1)
        await batches.put(batches.epoch, {TRANSFERS: [record(TRANSFERS, 1)]})
        second = asyncio.ensure_future(batches.put(batches.epoch, {TRANSFERS: [record(TRANSFERS, 2)]}))
        await asyncio.sleep(0.05)
        waited = not second.done()
        first = await batches.get()
        await asyncio.wait_for(second, 1)
        return waited, first, await batches.get()

    waited, first, second = asyncio.run(run())
    assert waited
    assert (first.offsets, second.offsets) == ({TRANSFERS: [1]}, {TRANSFERS: [2]})


def test_an_empty_fetch_queues_nothing():
    async def run():
        batches = InputBatches([TRANSFERS.topic])
        await batches.put(batches.epoch, {TRANSFERS: []})
        return batches.queue.qsize()

    assert asyncio.run(run()) == 0


def test_the_worker_tunes_the_collector_as_replay_does():
    """The live path is measured against replay's detector; both must pay the same gc cost."""
    import gc

    from stream.offline import replay
    from stream.worker import runner, tuning

    assert (tuning.GC_THRESHOLD, tuning.FREEZE_GC_EVERY) == (replay.GC_THRESHOLD, replay.FREEZE_GC_EVERY)
    before = gc.get_threshold()
    with runner.tuned_collector():
        assert gc.get_threshold() == replay.GC_THRESHOLD
    assert gc.get_threshold() == before
