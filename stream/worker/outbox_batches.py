"""The outbox in batches for the ClickHouse agent, each batch closed `linger` after its oldest warning arrived.

Faust's `take_events` waits a fixed interval after each batch is handled, however long the warnings in its
buffer have been waiting: one that arrives while a batch is being stored waits for that insert and then a
whole interval more. Here a batch is closed once its oldest warning has waited `linger`, or once it is full,
so a warning that waited through an insert goes into the very next one, and `clickhouse_batch_interval`
is what its description says: the longest a warning waits before its insert starts.

Offsets are acknowledged when the agent says so (`ack_all`), not when the next batch is taken, so the evidence
chain of a batch may be written while the next batch is stored, and the batch's offsets still wait for both.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Callable, Generic, TypeVar

T = TypeVar("T")


class OutboxBatches(Generic[T]):
    """The hand-over between the agent reading the outbox (`put`) and the task storing it (`next`). At most
    `max_size` items wait beyond the batch being stored: `put` waits meanwhile (backpressure)."""

    def __init__(self, *, max_size: int, linger_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        if max_size <= 0:
            raise ValueError(f"expected a positive batch size, got {max_size}")
        self.max_size = max_size
        self.linger_s = max(0.0, linger_s)
        self._clock = clock
        self._queue: asyncio.Queue[tuple[float, T]] = asyncio.Queue(max_size)

    async def put(self, item: T) -> None:
        await self._queue.put((self._clock(), item))

    async def next(self) -> list[T]:
        """The next batch: waits for a first item, then for more until that item has waited `linger_s` or
        the batch holds `max_size`. Items that waited longer already (they arrived during the previous
        batch) are taken at once."""
        arrived, first = await self._queue.get()
        batch = [first]
        deadline = arrived + self.linger_s
        queue = self._queue
        while len(batch) < self.max_size:
            if queue.empty():
                remaining = deadline - self._clock()
                if remaining <= 0:
                    break
                try:
                    _, item = await asyncio.wait_for(queue.get(), remaining)
                except TimeoutError:
                    break
            else:
                _, item = queue.get_nowait()
            batch.append(item)
        return batch


async def ack_all(stream: Any, events: list[Any]) -> None:
    """Acknowledge handled events of a stream that does not acknowledge by itself (`enable_acks` off)."""
    for event in events:
        await stream.ack(event)
