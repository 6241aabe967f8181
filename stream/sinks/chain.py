"""The evidence chain writer: after a batch of warnings is stored, their evidence, rule texts and chain records.

Order. Per outbox partition, in offset order: a warning that already has a chain record (a re-read batch, or the
same warning published again later) is skipped; every other one gets seq = the partition's last seq + 1 and
prev_hash = that record's hash, both read from the store (not from memory: after a crash, a restart or a
rebalance the store is the only truth). Evidence rows, rule texts, then the chain records are inserted. The sink
commits the batch's offsets only after this returns, so a crash anywhere before re-reads the batch and computes
exactly the same records from the same head: the chain never forks.

Checkpoints. Every `every` records past a partition's last checkpoint, and whatever is left once its oldest
record is `interval_ms` old (checked after every batch and by a timer), the records are signed in checkpoints
of at most `every` records each:
an RFC 6962 Merkle root over their hashes and an Ed25519 signature over (partition, first_seq, last_seq, root,
signed_ms). A crash before the checkpoint insert leaves the records unsigned; the next check signs them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Sequence

from ..clock import wall_clock_ms
from ..evidence import hashing
from ..evidence.hashing import ChainRecord, EventSource
from ..evidence.keys import SigningKey, public_pem
from ..model.warning import EarlyWarning
from . import evidence_tables as tables
from .store import WarningStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChainItem:
    """One stored warning of a batch, with where it sat in the outbox and what it was published with."""

    partition: int
    offset: int
    warning: EarlyWarning
    sources: tuple[EventSource, ...] = ()
    rule_text: str = ""
    settings_text: str = ""        # the worker's detector settings (hashing.detector_settings_text)


class EvidenceChain:
    def __init__(self, store: WarningStore, key: SigningKey, *, every: int = 100, interval_ms: int = 10_000,
                 clock: Callable[[], int] = wall_clock_ms) -> None:
        self.store = store
        self.key = key
        self.every = every
        self.interval_ms = interval_ms
        self.clock = clock
        self.records_written = 0
        self.checkpoints_written = 0
        self.skipped = 0
        self.partitions: set[int] = set()
        self._public_pem = public_pem(key.public)

    def ensure_schema(self) -> None:
        tables.ensure_evidence_schema(self.store)

    def append(self, items: Sequence[ChainItem]) -> list[ChainRecord]:
        """Chain the stored warnings of one batch (synchronous: run it in a thread). Returns the new records."""
        ordered: dict[int, list[ChainItem]] = {}
        latest = {item.warning.warning_id: item for item in sorted(items, key=lambda i: (i.partition, i.offset))}
        seen: set[str] = set()
        for item in sorted(items, key=lambda i: (i.partition, i.offset)):
            if item.warning.warning_id in seen:
                continue
            # The same warning twice in one batch: chained at its first place in the outbox, with the content of
            # its last copy, which is the one the warnings insert keeps (stream.sinks.writer.dedupe_batch).
            seen.add(item.warning.warning_id)
            last = latest[item.warning.warning_id]
            ordered.setdefault(item.partition, []).append(
                ChainItem(item.partition, item.offset, last.warning, last.sources, last.rule_text,
                          last.settings_text))
        if not ordered:
            return []
        already = tables.chained_ids(self.store, sorted(seen))
        head = tables.heads(self.store, sorted(ordered))
        now = self.clock()
        new: list[ChainRecord] = []
        evidence_rows, rule_rows, settings_rows = [], {}, {}
        for partition, chunk in ordered.items():
            self.partitions.add(partition)
            seq, prev = head.get(partition, (0, hashing.GENESIS))
            for item in chunk:
                warning = item.warning
                if warning.warning_id in already:
                    self.skipped += 1
                    continue
                rule_digest = hashing.rule_sha256(item.rule_text)
                settings_digest = hashing.settings_sha256(item.settings_text)
                seq += 1
                record = hashing.next_record(partition, seq, warning.warning_id,
                                             hashing.warning_sha256(warning.to_json()),
                                             hashing.sources_sha256(item.sources), rule_digest, settings_digest,
                                             prev, now)
                prev = record.record_hash
                new.append(record)
                evidence_rows += tables.event_rows(warning.warning_id, item.sources, now)
                if item.rule_text:
                    rule_rows[rule_digest] = {"rule_id": warning.rule_id, "rule_version": warning.rule_version,
                                              "text": item.rule_text, "rule_sha256": rule_digest,
                                              "inserted_ms": now}
                if item.settings_text:
                    settings_rows[settings_digest] = {"settings_sha256": settings_digest, "text": item.settings_text,
                                                      "inserted_ms": now}
        if new:
            self.store.insert_into(tables.EVENTS, tables.EVENT_COLUMNS, evidence_rows)
            self.store.insert_into(tables.RULES, tables.RULE_COLUMNS, list(rule_rows.values()))
            self.store.insert_into(tables.SETTINGS, tables.SETTINGS_COLUMNS, list(settings_rows.values()))
            self.store.insert_into(tables.CHAIN, tables.CHAIN_COLUMNS, [tables.record_row(r) for r in new])
            self.records_written += len(new)
        for record in new:
            head[record.partition] = (record.seq, record.record_hash)
        self.sign_due(sorted(ordered), known_heads=head)
        return new

    def sign_due(self, partitions: Sequence[int] | None = None, *, force: bool = False,
                 known_heads: dict[int, tuple[int, str]] | None = None) -> int:
        """Sign every partition whose unsigned tail is due (or any tail, with `force`); returns checkpoints made.
        `known_heads`: the heads `append` just wrote, saving a query."""
        partitions = sorted(self.partitions if partitions is None else partitions)
        if not partitions:
            return 0
        head = known_heads if known_heads is not None else tables.heads(self.store, partitions)
        signed = tables.last_signed(self.store, partitions)
        made = 0
        now = self.clock()
        for partition in partitions:
            if partition not in head:
                continue
            last_seq = head[partition][0]
            first_seq = signed.get(partition, 0) + 1
            if last_seq < first_seq:
                continue
            tail = tables.records(self.store, partition, first_seq, last_seq)
            if not tail:
                continue
            if [r.seq for r in tail] != list(range(first_seq, last_seq + 1)):
                log.error("evidence chain of outbox partition %d has a gap between seq %d and %d; not signing it "
                          "(run `fundflow evidence audit`)", partition, first_seq, last_seq)
                continue
            # At most `every` records per checkpoint (a bundle carries its checkpoint's records): full chunks now,
            # the rest once it is old enough.
            rows = []
            for start in range(0, len(tail), self.every):
                chunk = tail[start:start + self.every]
                if len(chunk) == self.every or force or now - chunk[0].inserted_ms >= self.interval_ms:
                    rows.append(self.checkpoint_row(partition, chunk, now))
            if rows:
                self.store.insert_into(tables.CHECKPOINTS, tables.CHECKPOINT_COLUMNS, rows)
                made += len(rows)
        self.checkpoints_written += made
        return made

    def checkpoint_row(self, partition: int, tail: Sequence[ChainRecord], now: int) -> dict:
        root = hashing.records_root(tail)
        message = hashing.checkpoint_message(partition, tail[0].seq, tail[-1].seq, root, now)
        return {"outbox_partition": partition, "first_seq": tail[0].seq, "last_seq": tail[-1].seq,
                "merkle_root": root, "signature": self.key.sign(message), "key_id": self.key.key_id,
                "public_key": self._public_pem, "signed_ms": now}
