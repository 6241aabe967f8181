"""`fundflow evidence audit`: the store's whole chain walked, every partition from its first record.

For each outbox partition: records numbered 1, 2, 3, ... with no gap (a deleted record); each record's hash over
its own fields (an altered chain row) and its link to the one before (a reordering); each record's hashes
against the rows it stands for: the stored warning, its evidence events and its rule text (an altered or deleted
row); every checkpoint: contiguous with the one before, its Merkle root recomputed, its signature; and the records
after the last checkpoint (the unsigned tail: reported, an error only with `strict`). Warnings stored without a
chain record yet are counted (a worker that has not caught up).

Deleting the newest records together with their checkpoints leaves a shorter chain that audits clean. An
earlier audit's JSON (`anchor`), kept outside the store, pins each partition's head as it was then: the store must
still hold that record, unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..evidence import hashing
from ..evidence.hashing import ChainRecord
from ..evidence.keys import EvidenceKeyError, key_id, load_public_pem, verify_signature
from ..sinks import evidence_tables as tables
from ..sinks.store import WarningStore, identifier
from ..sinks.evidence_tables import canonical_row_json, stored_sources


@dataclass
class PartitionAudit:
    partition: int
    records: int = 0
    signed_through: int = 0
    checkpoints: int = 0
    unsigned: int = 0
    head_seq: int = 0
    head_hash: str = ""


@dataclass
class AuditReport:
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    partitions: list[PartitionAudit] = field(default_factory=list)
    unchained: int = 0
    strict: bool = False

    @property
    def unsigned(self) -> int:
        return sum(p.unsigned for p in self.partitions)

    @property
    def ok(self) -> bool:
        return not self.problems and not (self.strict and (self.unsigned or self.unchained))

    def render(self) -> str:
        lines = []
        for p in self.partitions:
            lines.append(f"outbox partition {p.partition}: {p.records} records, {p.checkpoints} checkpoints, signed "
                         f"through seq {p.signed_through}" + (f", unsigned tail of {p.unsigned}" if p.unsigned else ""))
        lines += [f"PROBLEM: {problem}" for problem in self.problems]
        lines += [f"note: {note}" for note in self.notes]
        verdict = "chain intact" if not self.problems else f"chain NOT intact: {len(self.problems)} problems"
        if self.strict and (self.unsigned or self.unchained) and not self.problems:
            verdict = "chain intact but not complete (--strict): unsigned or unchained warnings"
        lines.append(verdict)
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "problems": self.problems, "notes": self.notes, "unchained_warnings": self.unchained,
                "partitions": [vars(p) for p in self.partitions]}


def audit_store(store: WarningStore, *, public_key_pem: bytes | None = None, strict: bool = False,
                anchor: Any = None) -> AuditReport:
    """`anchor`: an earlier report's `as_dict()` (its partitions' heads), which the chain must still contain."""
    report = AuditReport(strict=strict)
    expected_key = None
    if public_key_pem is not None:
        expected_key = load_public_pem(public_key_pem)
    all_records = tables.records(store)
    by_partition: dict[int, list[ChainRecord]] = {}
    for record in all_records:
        by_partition.setdefault(record.partition, []).append(record)
    checkpoints: dict[int, list[dict]] = {}
    for row in tables.checkpoints(store):
        checkpoints.setdefault(int(row["outbox_partition"]), []).append(row)
    warning_ids = sorted({r.warning_id for r in all_records})
    stored = tables.warnings_by_id(store, warning_ids)
    evidence = tables.evidence_of(store, warning_ids)
    texts = tables.rule_texts(store)
    texts.update(tables.settings_texts(store))
    for partition in sorted(set(by_partition) | set(checkpoints)):
        report.partitions.append(_audit_partition(partition, by_partition.get(partition, []),
                                                  checkpoints.get(partition, []), stored, evidence, texts,
                                                  expected_key, report))
    if anchor is not None:
        _check_anchor(anchor, by_partition, report)
    total = int(store.query(f"SELECT count() AS n FROM {identifier(store.database)}.warnings FINAL")[0]["n"])
    report.unchained = max(0, total - len(warning_ids))
    if report.unchained:
        report.notes.append(f"{report.unchained} stored warnings have no chain record yet (a worker catching up, or "
                            f"stored with evidence_chain off)")
    if report.unsigned:
        report.notes.append(f"{report.unsigned} chain records are not covered by a signed checkpoint yet (the unsigned "
                            f"tail; signed within evidence_checkpoint_interval while a worker runs)")
    return report


def _check_anchor(anchor: Any, by_partition: dict[int, list[ChainRecord]], report: AuditReport) -> None:
    try:
        heads = [(int(p["partition"]), int(p["head_seq"]), str(p["head_hash"])) for p in anchor["partitions"]]
    except (KeyError, TypeError, ValueError) as exc:
        report.problems.append(f"the anchor is not an audit report's JSON ({type(exc).__name__}: {exc})")
        return
    for partition, seq, record_hash in heads:
        if seq == 0:
            continue
        held = {r.seq: r for r in by_partition.get(partition, [])}.get(seq)
        if held is None:
            report.problems.append(f"partition {partition}: seq {seq}, the head when the anchor was taken, is gone "
                                   f"(the chain was truncated)")
        elif held.record_hash != record_hash:
            report.problems.append(f"partition {partition}: seq {seq} differs from the record the anchor holds "
                                   f"(the chain was rewritten)")
    if heads:
        report.notes.append(f"anchor: {len(heads)} partition heads from an earlier audit checked")


def _audit_partition(partition: int, records: list[ChainRecord], checkpoints: list[dict], stored: dict,
                     evidence: dict, texts: dict, expected_key: Any, report: AuditReport) -> PartitionAudit:
    result = PartitionAudit(partition, records=len(records))
    problem = report.problems.append
    by_seq = {r.seq: r for r in records}
    previous: ChainRecord | None = None
    expected_seq = 1
    for record in records:
        where = f"partition {partition} seq {record.seq} ({record.warning_id})"
        if record.seq != expected_seq:
            missing = (f"seq {expected_seq}" if record.seq == expected_seq + 1
                       else f"seq {expected_seq}..{record.seq - 1}")
            problem(f"gap in partition {partition}: {missing} missing (a deleted chain record)")
        elif record.prev_hash != (previous.record_hash if previous is not None else hashing.GENESIS):
            problem(f"{where}: does not link to the record before it (reordered or replaced)")
        if record.expected_hash() != record.record_hash:
            problem(f"{where}: the chain row was altered (its hash does not match its fields)")
        row = stored.get(record.warning_id)
        if row is None:
            problem(f"{where}: the warning row is missing from the warnings table")
        elif hashing.warning_sha256(canonical_row_json(row)) != record.warning_sha256:
            problem(f"{where}: the stored warning row was altered (its SHA-256 differs from the chain's)")
        if hashing.sources_sha256(stored_sources(evidence.get(record.warning_id, []))) != record.events_sha256:
            problem(f"{where}: its evidence events were altered, added or deleted")
        text = texts.get(record.rule_sha256)
        if text is None and record.rule_sha256 != hashing.rule_sha256(""):
            problem(f"{where}: its rule text is missing from rule_texts")
        elif text is not None and hashing.rule_sha256(text) != record.rule_sha256:
            problem(f"{where}: its rule text was altered")
        settings = texts.get(record.settings_sha256)
        if settings is None and record.settings_sha256 != hashing.settings_sha256(""):
            problem(f"{where}: its detector settings are missing from detector_settings")
        elif settings is not None and hashing.settings_sha256(settings) != record.settings_sha256:
            problem(f"{where}: its detector settings were altered")
        previous, expected_seq = record, record.seq + 1
    covered = 0
    for row in checkpoints:
        first, last = int(row["first_seq"]), int(row["last_seq"])
        where = f"checkpoint of partition {partition} seq {first}..{last}"
        if first != covered + 1:
            problem(f"{where}: does not start right after the previous checkpoint (seq {covered})")
        span = [by_seq.get(seq) for seq in range(first, last + 1)]
        if any(r is None for r in span):
            problem(f"{where}: covers records that are missing")
        elif hashing.records_root(span) != row["merkle_root"]:
            problem(f"{where}: its Merkle root does not match the records (a covered record was altered)")
        try:
            public = expected_key or load_public_pem(str(row["public_key"]))
        except EvidenceKeyError as exc:
            problem(f"{where}: {exc}")
            continue
        if str(row["key_id"]) != key_id(public):
            problem(f"{where}: signed by key {row['key_id']}, not by {key_id(public)}")
        elif not verify_signature(public, str(row["signature"]), hashing.checkpoint_message(
                partition, first, last, str(row["merkle_root"]), int(row["signed_ms"]))):
            problem(f"{where}: the signature does not verify")
        covered = max(covered, last)
        result.checkpoints += 1
    result.signed_through = covered
    last_seq = records[-1].seq if records else 0
    if records:
        result.head_seq, result.head_hash = records[-1].seq, records[-1].record_hash
    result.unsigned = max(0, last_seq - covered)
    return result
