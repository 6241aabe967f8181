"""The members' feeds from a Kafka topic (`indicators_topic`, e.g. `fundflow.indicators`, compacted and keyed by
the source institution): every worker reads every partition of it, from the start and without a consumer group
(each needs every member's feed, not a share of them), verifies each record as `fundflow indicators import`
verifies a file, and merges it into the local set in `indicators_dir`. The reload of that directory (same timer)
then swaps the new set in, so a feed from the topic and a feed imported by hand take one path.

A record that is not a valid feed (bad signature, unknown signer, wrong consortium key, older than the last one of
its source) is logged with its reason and offset and skipped; the worker goes on. With compaction only the latest
feed of each source is kept: a member publishes its whole current list each time (as `publish` does).
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from ..clock import wall_clock_ms
from ..errors import FundflowError
from ..indicators.feed import FeedError, load_members, parse_feed
from ..indicators.indicator_set import ImportReport, merge, read_set, write_set
from ..indicators.keys import load_keys
from ..settings import Settings

log = logging.getLogger(__name__)


def topic_partitions(bootstrap: list[str], topic: str) -> set[int]:
    """The partitions of `topic` by the broker's metadata now; empty when it does not exist."""
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                             client_id="fundflow-indicator-feeds-metadata")
    try:
        return set(consumer.partitions_for_topic(topic) or ())
    finally:
        consumer.close()


class FeedFollower:
    """Polled on the reload timer: reads what the topic holds beyond what it read last, merges it, writes the set."""

    def __init__(self, settings: Settings) -> None:
        if settings.indicators_dir is None or settings.indicator_members is None:
            raise FundflowError("indicators_topic needs indicators_dir (where the merged set is written) and "
                                "indicator_members (the members' public keys)")
        self.settings = settings
        self.topic = settings.indicators_topic
        self.directory = Path(settings.indicators_dir)
        self._consumer: Any = None
        self._said_missing = False
        self._assigned = False
        self._pending: list = []            # records read but not merged yet (the set could not be written)
        self.records = 0
        self.merged = 0
        self.refused = 0

    async def poll(self) -> int:
        """Merge the records that arrived since the last poll; returns how many were read."""
        from aiokafka import AIOKafkaConsumer, TopicPartition

        if self._consumer is None:
            # one consumer for the worker's life: it never joins a group, and is stopped at shutdown
            consumer = AIOKafkaConsumer(bootstrap_servers=self.settings.broker_bootstrap, group_id=None,
                                        enable_auto_commit=False, auto_offset_reset="earliest",
                                        client_id="fundflow-indicator-feeds", fetch_max_wait_ms=50)
            await consumer.start()
            self._consumer = consumer
        if not self._assigned:
            consumer = self._consumer
            # asked of the broker afresh each time until the topic is there (the consumer's own metadata is not
            # refreshed for a topic it is not assigned), off the event loop: kafka-python's call blocks
            partitions = await asyncio.get_running_loop().run_in_executor(
                None, topic_partitions, self.settings.broker_bootstrap, self.topic)
            if not partitions:
                if not self._said_missing:
                    self._said_missing = True
                    log.warning("indicators_topic %s does not exist (yet); feeds are read once it does "
                                "(`fundflow indicators send` creates it)", self.topic)
                return 0
            tps = [TopicPartition(self.topic, p) for p in sorted(partitions)]
            consumer.assign(tps)
            await consumer.seek_to_beginning()
            ends = await consumer.end_offsets(tps)
            log.info("reading indicator feeds from %s (partitions %s, %d records)", self.topic,
                     ", ".join(str(tp.partition) for tp in tps), sum(ends.values()))
            self._assigned = True
        batches = await self._consumer.getmany(timeout_ms=200)
        records = [record for _, messages in sorted(batches.items(), key=lambda item: item[0].partition)
                   for record in messages]
        self.records += len(records)
        self._pending += records
        if self._pending:
            self._merge(self._pending)      # raises when the set cannot be read or written: kept for the next tick
            self._pending = []
        return len(records)

    def _merge(self, records: list) -> None:
        keys = load_keys(self.settings.indicator_keys)
        members = load_members(self.settings.indicator_members)
        report = ImportReport()
        feeds = []
        for record in records:
            where = f"{self.topic}[{record.partition}]@{record.offset}"
            if record.value is None:
                continue                    # a tombstone: compaction's way of forgetting a source
            try:
                feeds.append(parse_feed(record.value, members, where))
            except FeedError as exc:
                report.refused.append(str(exc))
        current = read_set(self.directory, keys)
        merged, report = merge(current, feeds, keys, wall_clock_ms(), report)
        self.refused += len(report.refused)
        self.merged += len(report.feeds)
        write_set(self.directory, merged, keys)
        log.info("indicator feeds from %s: %s", self.topic, report.render().replace("\n", "; "))
        for refusal in report.refused:
            log.error("indicator feed refused: %s", refusal)

    async def stop(self) -> None:
        if self._consumer is not None:
            consumer, self._consumer = self._consumer, None
            self._assigned = False
            await consumer.stop()
