"""The worker's Kafka transport: Faust's aiokafka driver with the broker fetch wait as a setting.

Faust builds its consumer with a fixed `fetch_max_wait_ms` of 1500. A broker that does not answer a fetch
as soon as data arrives (the tansu broker of the local stack holds every fetch until the wait is over; Kafka
answers early) then adds up to that much to the delay of every warning. Making the wait a setting keeps
detection latency low on such brokers at the price of a few more empty fetches on idle topics.
"""

from __future__ import annotations

from typing import Any

import faust
from faust.transport.drivers import aiokafka as driver


def kafka_transport(fetch_max_wait_ms: int) -> type[driver.Transport]:
    class ConsumerThread(driver.AIOKafkaConsumerThread):
        def _create_worker_consumer(self, transport: Any) -> Any:
            consumer = super()._create_worker_consumer(transport)
            consumer._fetch_max_wait_ms = fetch_max_wait_ms   # read when the consumer starts its fetcher
            return consumer

    class WorkerConsumer(driver.Consumer):
        def _new_consumer_thread(self) -> ConsumerThread:
            return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    class Transport(driver.Transport):
        Consumer = WorkerConsumer

    return Transport


class WorkerApp(faust.App):
    """faust.App whose consumer uses `kafka_transport`; set `fetch_max_wait_ms` before the first topic."""

    fetch_max_wait_ms = 1500

    def _new_transport(self) -> Any:
        return kafka_transport(self.fetch_max_wait_ms)(self.conf.broker_consumer, self)
