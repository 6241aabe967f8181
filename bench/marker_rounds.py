"""How fast workers could agree on progress through Kafka: one marker round is worker 1 publishing its
watermark, worker 2 reading it and publishing its own, worker 1 reading that. Exact cross-worker detection needs
such a round per dependent step (docs/partitioning.md, "Across workers"), so rounds per second bound it.

    .venv/bin/python -m bench.marker_rounds [--rounds N]
"""

from __future__ import annotations

import argparse
import statistics
import time

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from stream.dev.devstack import start_kafka


def measure(rounds: int) -> list[float]:
    broker = start_kafka()
    try:
        broker.create_topics(["markers.a", "markers.b"], partitions=1)
        producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all", linger_ms=0)
        consumers = {}
        for topic in ("markers.a", "markers.b"):
            consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, fetch_max_wait_ms=5, enable_auto_commit=False)
            consumer.assign([TopicPartition(topic, 0)])
            consumer.seek_to_beginning()
            consumers[topic] = consumer

        def hop(topic: str) -> None:
            producer.send(topic, b"watermark")
            producer.flush()
            while not any(consumers[topic].poll(50).values()):
                pass

        hop("markers.a")                       # warm-up: connections, metadata
        times = []
        for _ in range(rounds):
            started = time.perf_counter()
            hop("markers.a")
            hop("markers.b")
            times.append(time.perf_counter() - started)
        return times
    finally:
        broker.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=200)
    times = sorted(measure(parser.parse_args().rounds))
    median = statistics.median(times)
    print(f"marker round on the local broker: median {median * 1000:.1f} ms, p90 {times[int(len(times) * 0.9)] * 1000:.1f} ms"
          f" -> at most {1 / median:,.0f} dependent steps per second for a whole worker group "
          f"(one worker alone: 2,700 events/s live, docs/performance.md)")


if __name__ == "__main__":
    main()
