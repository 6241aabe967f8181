#!/bin/bash
# Creates the topics fundflow reads and writes, once Kafka is healthy. Idempotent (--if-not-exists), so
# `docker compose up` can run it on every start. Input topics are keyed by account: their partition count
# is the most workers that can share the load, so set FUNDFLOW_TOPIC_PARTITIONS before the first start
# (Kafka can add partitions later, but that moves accounts between partitions and workers).
set -euo pipefail

BOOTSTRAP="${KAFKA_BOOTSTRAP:-kafka:9092}"
PARTITIONS="${FUNDFLOW_TOPIC_PARTITIONS:-6}"
REPLICATION="${FUNDFLOW_TOPIC_REPLICATION:-1}"
TOPICS_BIN=/opt/kafka/bin/kafka-topics.sh

for topic in fundflow.disbursements fundflow.transfers fundflow.deadletter fundflow.warnings; do
    "$TOPICS_BIN" --bootstrap-server "$BOOTSTRAP" --create --if-not-exists \
        --topic "$topic" --partitions "$PARTITIONS" --replication-factor "$REPLICATION"
done

"$TOPICS_BIN" --bootstrap-server "$BOOTSTRAP" --describe --topic 'fundflow\..*'
