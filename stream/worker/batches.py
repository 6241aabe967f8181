"""The worker's input in batches, below Faust's per-message stream.

Faust hands every record it consumes to its streams one at a time: a message object, sensor calls, a queue put,
an event object, an acknowledgement, about 100 µs per record on the project's machine and several times what
detecting the event costs. The input topics skip that path. The worker's consumer
(`transport.WorkerConsumer`) takes their records out of each fetch, does Faust's per-partition bookkeeping once
per fetch (read offsets, offset gaps, the monitor's offsets) and puts them here as one `InputBatch`; the input
agent takes the batches in order, runs the pipeline on each and acknowledges its offsets through the same
consumer, so Faust's commit loop commits them exactly as it commits the offsets of any acknowledged message.

A rebalance starts a new epoch (`reset`): a batch fetched before it, queued or not yet queued, is dropped and
never acknowledged, since Faust seeks every partition back to its committed offset once the new assignment is
rebuilt and those records are fetched again. The queue holds `depth` batches: the fetcher waits while the agent
is behind, which is the backpressure Faust's stream buffer used to give.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from .deadletter import Origin, normalize_headers
from .pipeline import Message
from .tuning import INPUT_QUEUE_DEPTH


@dataclass(frozen=True, slots=True)
class InputBatch:
    """One fetch's records of the input topics: messages in log order per partition, and per partition (the
    consumer's TopicPartition) the offsets to acknowledge once the pipeline is done with them."""

    epoch: int
    messages: list[Message]
    offsets: dict[Any, list[int]]


class InputBatches:
    """The hand-over between the consumer's fetch loop (`put`) and the one input agent (`get`)."""

    def __init__(self, topics: Iterable[str], depth: int = INPUT_QUEUE_DEPTH) -> None:
        self.topics = frozenset(topics)
        self.epoch = 0
        self._depth = depth
        self._queue: asyncio.Queue[InputBatch] | None = None
        self.batches = 0            # handed to the agent
        self.records = 0
        self.dropped = 0            # batches dropped by a rebalance

    @property
    def queue(self) -> asyncio.Queue[InputBatch]:
        # Made on first use, inside the worker's event loop.
        if self._queue is None:
            self._queue = asyncio.Queue(self._depth)
        return self._queue

    def reset(self) -> None:
        """A rebalance: what was fetched under the previous assignment is dropped, queued or still on its way."""
        self.epoch += 1
        queue = self.queue
        while not queue.empty():
            queue.get_nowait()
            self.dropped += 1

    async def put(self, epoch: int, records: Mapping[Any, Sequence[Any]]) -> None:
        """Queue one fetch's records (aiokafka ConsumerRecords per partition, each list in log order), fetched
        in `epoch`; waits while the queue is full."""
        if epoch != self.epoch:
            self.dropped += 1
            return
        messages: list[Message] = []
        offsets: dict[Any, list[int]] = {}
        for tp, batch in records.items():
            topic, partition = tp.topic, tp.partition
            messages.extend((record.value, record.key,
                             Origin(topic, partition, record.offset,
                                    record.timestamp if record.timestamp is not None and record.timestamp >= 0
                                    else -1),
                             normalize_headers(record.headers))
                            for record in batch)
            offsets[tp] = [record.offset for record in batch]
        if not messages:
            return
        await self.queue.put(InputBatch(epoch, messages, offsets))

    async def get(self) -> InputBatch:
        """The next batch of the current epoch."""
        while True:
            batch = await self.queue.get()
            if batch.epoch == self.epoch:
                self.batches += 1
                self.records += len(batch.messages)
                return batch
            self.dropped += 1

    def is_current(self, batch: InputBatch) -> bool:
        """False once a rebalance came after the batch was fetched: its offsets must not be acknowledged."""
        return batch.epoch == self.epoch
