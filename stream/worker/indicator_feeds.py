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
        self.records = 0
        self.merged = 0
        self.refused = 0

    async def poll(self) -> int:
        """Merge the records that arrived since the last poll; returns how many were read."""
        from aiokafka import AIOKafkaConsumer, TopicPartition

        if self._consumer is None:
            consumer = AIOKafkaConsumer(bootstrap_servers=self.settings.broker_bootstrap, group_id=None,
                                        enable_auto_commit=False, auto_offset_reset="earliest",
                                        client_id="fundflow-indicator-feeds", fetch_max_wait_ms=50)
            await consumer.start()
            partitions = consumer.partitions_for_topic(self.topic)
            if not partitions:
                await consumer.stop()
                if not self._said_missing:
                    self._said_missing = True
                    log.warning("indicators_topic %s does not exist (yet); feeds are read once it does "
                                "(`fundflow indicators send` creates it)", self.topic)
                return 0
            consumer.assign([TopicPartition(self.topic, p) for p in sorted(partitions)])
            await consumer.seek_to_beginning()
            self._consumer = consumer
        batches = await self._consumer.getmany(timeout_ms=200)
        records = [record for _, messages in sorted(batches.items(), key=lambda item: item[0].partition)
                   for record in messages]
        if records:
            self._merge(records)
        return len(records)

    def _merge(self, records: list) -> None:
        keys = load_keys(self.settings.indicator_keys)
        members = load_members(self.settings.indicator_members)
        report = ImportReport()
        feeds = []
        for record in records:
            self.records += 1
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
            await consumer.stop()
