"""The evidence chain writer: after a batch of warnings is stored, their evidence, rule texts and chain records.

Order. Per outbox partition, in offset order: a warning that already has a chain record (a re-read batch, or the
same warning published again later; always asked of the store) is skipped; every other one gets seq = the
partition's last seq + 1 and prev_hash = that record's hash, read from the store after a crash, a restart or a
rebalance (the store is then the only truth) and remembered in between (below). Evidence rows, rule texts,
then the chain records are inserted. The sink commits the batch's offsets only after this returns, so a crash
anywhere before re-reads the batch and computes exactly the same records from the same head: the chain never
forks.

What the writer remembers. While this process owns an outbox partition it is the only writer of that
partition's chain, so after a batch it knows the head (seq, hash), the last signed seq, when the oldest unsigned
record was written and which rule and settings texts it stored; the next batch then costs one query (which of
its warnings are chained already) and two inserts, where reading it all back took six more round trips (two
head queries, the last checkpoint, the unsigned tail, and the rule and settings texts inserted again). Any
failure of an append or a signing, and every rebalance (`forget`), drops all of it: the store is read again,
as it is after a crash or a restart.

Checkpoints. Every `every` records past a partition's last checkpoint, and whatever is left once its oldest
record is `interval_ms` old (checked after every batch and by a timer), the records are signed in checkpoints
of at most `every` records each:
an RFC 6962 Merkle root over their hashes and an Ed25519 signature over (partition, first_seq, last_seq, root,
signed_ms). A crash before the checkpoint insert leaves the records unsigned; the next check signs them.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

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
        self._heads: dict[int, tuple[int, str]] = {}      # partition -> (seq, record_hash) written last
        self._signed: dict[int, int] = {}                 # partition -> last seq under a checkpoint
        self._unsigned_since: dict[int, int] = {}         # partition -> inserted_ms of its oldest unsigned record
        self._texts: set[tuple[str, str]] = set()         # (table, sha256) of rule and settings texts stored
        self._forgotten = 0                               # forget() calls, which may come from another thread

    def forget(self) -> None:
        """Drop what this writer remembers of the chain (another writer may have continued it): the next
        append and signing read heads and checkpoints from the store."""
        self._forgotten += 1
        self._heads.clear()
        self._signed.clear()
        self._unsigned_since.clear()
        self._texts.clear()

    def _known_heads(self, partitions: Sequence[int]) -> dict[int, tuple[int, str]]:
        return self._remembered(self._heads, partitions, tables.heads, (0, hashing.GENESIS))

    def _known_signed(self, partitions: Sequence[int]) -> dict[int, int]:
        return self._remembered(self._signed, partitions, tables.last_signed, 0)

    def _remembered(self, memory: dict, partitions: Sequence[int], read: Callable, default) -> dict:
        """Per partition, what `memory` holds, and for the others what `read` finds in the store (`default` when
        it finds nothing), remembered from now on."""
        known = {partition: value for partition in partitions if (value := memory.get(partition)) is not None}
        missing = [partition for partition in partitions if partition not in known]
        if missing:
            found = read(self.store, missing)
            for partition in missing:
                known[partition] = memory[partition] = found.get(partition, default)
        return known

    @contextmanager
    def _forgetting_on_doubt(self) -> Iterator[None]:
        """Around a call that reads and writes the store: a failure (an insert may or may not have landed) or a
        `forget` from another thread meanwhile (a rebalance) leaves nothing remembered."""
        forgotten = self._forgotten
        try:
            yield
        except BaseException:
            self.forget()
            raise
        finally:
            if self._forgotten != forgotten:
                self.forget()

    def ensure_schema(self) -> None:
        tables.ensure_evidence_schema(self.store)

    def append(self, items: Sequence[ChainItem]) -> list[ChainRecord]:
        """Chain the stored warnings of one batch (synchronous: run it in a thread). Returns the new records."""
        with self._forgetting_on_doubt():
            return self._append(items)

    def _append(self, items: Sequence[ChainItem]) -> list[ChainRecord]:
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
        head = self._known_heads(sorted(ordered))
        now = self.clock()
        new: list[ChainRecord] = []
        evidence_rows, rule_rows, settings_rows = [], {}, {}
        for partition, chunk in ordered.items():
            self.partitions.add(partition)
            seq, prev = head[partition]
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
        rule_rows = {digest: row for digest, row in rule_rows.items() if (tables.RULES, digest) not in self._texts}
        settings_rows = {digest: row for digest, row in settings_rows.items()
                         if (tables.SETTINGS, digest) not in self._texts}
        if new:
            self.store.insert_into(tables.EVENTS, tables.EVENT_COLUMNS, evidence_rows)
            self.store.insert_into(tables.RULES, tables.RULE_COLUMNS, list(rule_rows.values()))
            self.store.insert_into(tables.SETTINGS, tables.SETTINGS_COLUMNS, list(settings_rows.values()))
            self.store.insert_into(tables.CHAIN, tables.CHAIN_COLUMNS, [tables.record_row(r) for r in new])
            self.records_written += len(new)
            self._texts.update((tables.RULES, digest) for digest in rule_rows)
            self._texts.update((tables.SETTINGS, digest) for digest in settings_rows)
        signed = self._known_signed(sorted(ordered))
        for record in new:
            if head[record.partition][0] == signed[record.partition]:       # the first record of an unsigned tail
                self._unsigned_since[record.partition] = now
            head[record.partition] = self._heads[record.partition] = (record.seq, record.record_hash)
        self.sign_due(sorted(ordered), known_heads=head)
        return new

    def sign_due(self, partitions: Sequence[int] | None = None, *, force: bool = False,
                 known_heads: dict[int, tuple[int, str]] | None = None) -> int:
        """Sign every partition whose unsigned tail is due (or any tail, with `force`); returns checkpoints made.
        `known_heads`: the heads `append` just wrote, saving a query."""
        with self._forgetting_on_doubt():
            return self._sign_due(partitions, force=force, known_heads=known_heads)

    def _sign_due(self, partitions: Sequence[int] | None, *, force: bool,
                  known_heads: dict[int, tuple[int, str]] | None) -> int:
        partitions = sorted(self.partitions if partitions is None else partitions)
        if not partitions:
            return 0
        head = known_heads if known_heads is not None else self._known_heads(partitions)
        signed = self._known_signed(partitions)
        made = 0
        now = self.clock()
        for partition in partitions:
            if partition not in head:
                continue
            last_seq = head[partition][0]
            first_seq = signed.get(partition, 0) + 1
            if last_seq < first_seq:
                continue
            since = self._unsigned_since.get(partition)
            if not force and since is not None and last_seq - first_seq + 1 < self.every and \
                    now - since < self.interval_ms:
                continue            # not due, and known without reading the tail back
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
                signed_to = rows[-1]["last_seq"]
                self._signed[partition] = signed_to
                rest = [record for record in tail if record.seq > signed_to]
                if rest:
                    self._unsigned_since[partition] = rest[0].inserted_ms
                else:
                    self._unsigned_since.pop(partition, None)
            else:
                self._unsigned_since[partition] = tail[0].inserted_ms
        self.checkpoints_written += made
        return made

    def checkpoint_row(self, partition: int, tail: Sequence[ChainRecord], now: int) -> dict:
        root = hashing.records_root(tail)
        message = hashing.checkpoint_message(partition, tail[0].seq, tail[-1].seq, root, now)
        return {"outbox_partition": partition, "first_seq": tail[0].seq, "last_seq": tail[-1].seq,
                "merkle_root": root, "signature": self.key.sign(message), "key_id": self.key.key_id,
                "public_key": self._public_pem, "signed_ms": now}
