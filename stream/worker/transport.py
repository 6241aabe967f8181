"""The worker's Kafka transport: Faust's aiokafka driver with the broker fetch wait as a setting, and the input
topics' records taken out of each fetch in one batch (`batches`).

Faust builds its consumer with a fixed `fetch_max_wait_ms` of 1500. A broker that does not answer a fetch
as soon as data arrives (the tansu broker of the local stack holds every fetch until the wait is over; Kafka
answers early) then adds up to that much to the delay of every warning. Making the wait a setting keeps
detection latency low on such brokers at the price of a few more empty fetches on idle topics.

`WorkerConsumer` is still Faust's consumer: it joins the group, runs the rebalance callbacks, fetches every
assigned partition and commits what was acknowledged. Only the records of the topics an `InputBatches` names
leave Faust's per-message path: after each fetch they go to that hand-over as one batch, with the bookkeeping
Faust's fetch loop would have done record by record (read offsets, offset gaps, the monitor's offsets), and
their offsets come back through `acknowledge` once the pipeline is done with them. Every other topic (the
outbox the sinks read) goes on through Faust's streams as before.
"""

from __future__ import annotations

from time import monotonic
from typing import Any, Mapping, Optional, Sequence

import faust
from faust.transport.drivers import aiokafka as driver
from faust.types.tuples import ack_lock
from mode.utils.futures import notify

from .batches import InputBatches


def kafka_transport(fetch_max_wait_ms: int) -> type[driver.Transport]:
    class ConsumerThread(driver.AIOKafkaConsumerThread):
        def _create_worker_consumer(self, transport: Any) -> Any:
            consumer = super()._create_worker_consumer(transport)
            consumer._fetch_max_wait_ms = fetch_max_wait_ms   # read when the consumer starts its fetcher
            return consumer

    class ThreadedConsumer(WorkerConsumer):
        def _new_consumer_thread(self) -> ConsumerThread:
            return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    class Transport(driver.Transport):
        Consumer = ThreadedConsumer

    return Transport


class WorkerConsumer(driver.Consumer):
    """Faust's aiokafka consumer, handing the records of `app.input_batches`' topics over in batches."""

    async def _wait_next_records(self, timeout: float) -> tuple[Optional[Mapping[Any, list]], Optional[set]]:
        batches: InputBatches | None = getattr(self.app, "input_batches", None)
        epoch = batches.epoch if batches is not None else 0
        records, active = await super()._wait_next_records(timeout)
        if batches is None or not records:
            return records, active
        mine = {tp: batch for tp, batch in records.items() if tp.topic in batches.topics}
        if not mine:
            return records, active
        rest = {tp: batch for tp, batch in records.items() if tp.topic not in batches.topics}
        # Faust's own loop drops a fetch made while the flow was stopped (a rebalance) and seeks back to the
        # committed offsets; so does this one, for the records it takes.
        if self.flow_active and not self.should_stop and epoch == batches.epoch:
            taken = await self._take(mine, active)
            if taken:
                await self.wait_first(batches.put(epoch, taken), self.suspend_flow.wait())
        return rest, active

    async def _take(self, records: Mapping[Any, Sequence[Any]], active: Optional[set]) -> dict[Any, Sequence[Any]]:
        """Per partition, what Faust's fetch loop (`Consumer._drain_messages`) does for each record, once: skip
        partitions no longer active, drop records below the read offset (read again after a seek), note gaps in
        the offsets (so commits can pass them) and the new read offset, and tell the monitor (lag, last read)."""
        taken: dict[Any, Sequence[Any]] = {}
        monitor = self.app.monitor
        acks_enabled_for = self.app.topics.acks_enabled_for
        now = monotonic()
        for tp, batch in records.items():
            if active is not None and tp not in active and tp not in self._buffered_partitions:
                continue
            read = self._read_offset[tp]
            if read is not None and batch and batch[0].offset < read:
                batch = [record for record in batch if record.offset >= read]
            if not batch:
                continue
            if acks_enabled_for(tp.topic):
                previous = read
                if batch[-1].offset - batch[0].offset + 1 != len(batch) or (
                        previous and batch[0].offset - previous > 1):
                    for record in batch:        # offsets missing from the log (compaction, transaction markers)
                        if previous and record.offset - previous > 1:
                            await self._add_gap(tp, previous + 1, record.offset)
                        previous = record.offset
            self._read_offset[tp] = batch[-1].offset
            if monitor is not None:
                monitor.track_tp_end_offset(tp, self.highwater(tp))
                monitor.tp_read_offsets[tp] = batch[-1].offset
                monitor.stream_inbound_time[tp] = now
            taken[tp] = batch
        return taken

    def acknowledge(self, offsets: Mapping[Any, Sequence[int]]) -> int:
        """Mark these offsets processed, as `Consumer.ack` does for one message: the commit loop then commits
        every partition up to its first offset not acknowledged. Returns how many were new."""
        added = 0
        with ack_lock:
            try:
                for tp, numbers in offsets.items():
                    if not self.app.topics.acks_enabled_for(tp.topic):
                        continue
                    committed = self._committed_offset[tp]
                    index = self._acked_index[tp]
                    fresh = [offset for offset in numbers
                             if (committed is None or offset >= committed) and offset not in index]
                    index.update(fresh)
                    self._acked[tp].extend(fresh)
                    added += len(fresh)
                self._n_acked += added
            finally:
                notify(self._waiting_for_ack)
        return added


class WorkerApp(faust.App):
    """faust.App whose consumer uses `kafka_transport`; set `fetch_max_wait_ms` before the first topic, and
    `input_batches` to take those topics' records in batches."""

    fetch_max_wait_ms = 1500
    input_batches: InputBatches | None = None

    def _new_transport(self) -> Any:
        return kafka_transport(self.fetch_max_wait_ms)(self.conf.broker_consumer, self)
