"""The shared local-stack fixtures work as other tests expect: topics with partitions, a ClickHouse server
that accepts DDL written for both 18.x and current ClickHouse."""

from __future__ import annotations

from kafka import KafkaConsumer, KafkaProducer

from stream.dev.devstack import create_topics


def test_kafka_broker_creates_partitioned_topics_and_round_trips(kafka_broker, unique):
    topic = unique("it.devstack.")
    assert create_topics(kafka_broker.bootstrap, [topic], partitions=3) == [topic]
    assert create_topics(kafka_broker.bootstrap, [topic], partitions=3) == []   # idempotent
    assert kafka_broker.url == f"kafka://127.0.0.1:{kafka_broker.port}"
    producer = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap)
    producer.send(topic, key=b"k", value=b"v", partition=2).get(timeout=10)
    producer.close()
    consumer = KafkaConsumer(bootstrap_servers=kafka_broker.bootstrap)
    try:
        assert consumer.partitions_for_topic(topic) == {0, 1, 2}
    finally:
        consumer.close()


def test_clickhouse_server_answers_over_the_native_protocol(clickhouse_server, unique):
    assert clickhouse_server.url == f"clickhouse://127.0.0.1:{clickhouse_server.port}/default"
    client = clickhouse_server.client()
    table = unique("devstack_")
    try:
        client.execute(f"CREATE TABLE {table} (id String, ts DateTime, n UInt32) "
                       f"ENGINE = ReplacingMergeTree() ORDER BY id")
        client.execute(f"INSERT INTO {table} (id, ts, n) VALUES", [("a", 1_772_446_500, 1), ("b", 1_772_446_501, 2)])
        assert client.execute(f"SELECT id, n FROM {table} ORDER BY id") == [("a", 1), ("b", 2)]
        client.execute(f"DROP TABLE {table}")
    finally:
        client.disconnect()
