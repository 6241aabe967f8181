"""Which partition owns a key: Kafka's default partitioner, so that detection state lives in the partition
number of the input records keyed by the same account (co-partitioning: same count, same hashing)."""

from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=1 << 16)
def partition_of(key: str, partitions: int) -> int:
    """murmur2 of the UTF-8 key, made positive, modulo the partition count (what Kafka producers do).

    kafka-python's murmur2 is the reference; it is imported on the first key of a partitioned run only, because
    importing the `kafka` package loads the whole client (half a second), which one partition never needs."""
    if partitions == 1:
        return 0
    from kafka.partitioner.default import murmur2
    return (murmur2(key.encode("utf-8")) & 0x7FFFFFFF) % partitions
