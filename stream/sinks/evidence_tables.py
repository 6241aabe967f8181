"""The evidence tables (stream/sinks/evidence.sql): their DDL, rows, and the reads the chain and the CLI need.

Plain SELECTs with FINAL, `IN` lists and `LIMIT n BY`, which ClickHouse 18.16 and chDB both run.
"""

from __future__ import annotations

from importlib import resources
from typing import Any, Iterable, Sequence

from ..evidence.hashing import ChainRecord, EventSource
from .store import WarningStore, identifier, literal

EVIDENCE_SQL = resources.files(__package__).joinpath("evidence.sql").read_text(encoding="utf-8")
_PREFIX = "CREATE TABLE IF NOT EXISTS "

EVENTS = "evidence_events"
RULES = "rule_texts"
SETTINGS = "detector_settings"
CHAIN = "chain"
CHECKPOINTS = "chain_checkpoints"

EVENT_COLUMNS = ("warning_id", "event_id", "topic", "kafka_partition", "kafka_offset", "event_ts_ms", "value",
                 "value_sha256", "inserted_ms")
RULE_COLUMNS = ("rule_id", "rule_version", "text", "rule_sha256", "inserted_ms")
SETTINGS_COLUMNS = ("settings_sha256", "text", "inserted_ms")
CHAIN_COLUMNS = ("outbox_partition", "seq", "warning_id", "warning_sha256", "events_sha256", "rule_sha256",
                 "settings_sha256", "prev_hash", "record_hash", "inserted_ms")
CHECKPOINT_COLUMNS = ("outbox_partition", "first_seq", "last_seq", "merkle_root", "signature", "key_id",
                      "public_key", "signed_ms")


def evidence_ddl(database: str) -> list[str]:
    """The CREATE TABLE statements, each qualified by `database`."""
    statements = []
    body = "\n".join(line for line in EVIDENCE_SQL.splitlines() if not line.startswith("--"))
    for statement in (part.strip() for part in body.split(";")):
        if not statement:
            continue
        assert statement.startswith(_PREFIX), statement[:60]
        statements.append(f"{_PREFIX}{identifier(database)}.{statement[len(_PREFIX):]}")
    return statements


def ensure_evidence_schema(store: WarningStore) -> None:
    for statement in evidence_ddl(store.database):
        store.execute(statement)


def _table(store: WarningStore, name: str) -> str:
    return f"{identifier(store.database)}.{identifier(name)}"


def canonical_row_json(row: dict[str, Any]) -> bytes:
    """A stored warning row's canonical JSON: byte for byte `EarlyWarning.to_json()` of the warning stored."""
    from ..evidence.hashing import canonical_json
    from .schema import row_to_warning_json
    return canonical_json(row_to_warning_json(row))


def stored_sources(rows: Sequence[dict[str, Any]]) -> list[EventSource]:
    """Evidence rows back as the event sources they were written from."""
    import base64
    return [EventSource(event_id=str(r["event_id"]), topic=str(r["topic"]), partition=int(r["kafka_partition"]),
                        offset=int(r["kafka_offset"]), value=base64.b64decode(str(r["value"])),
                        ts=int(r["event_ts_ms"])) for r in rows]


def event_rows(warning_id: str, sources: Iterable[EventSource], inserted_ms: int) -> list[dict[str, Any]]:
    import base64
    return [{"warning_id": warning_id, "event_id": s.event_id, "topic": s.topic, "kafka_partition": s.partition,
             "kafka_offset": s.offset, "event_ts_ms": s.ts, "value": base64.b64encode(s.value).decode("ascii"),
             "value_sha256": s.value_sha256, "inserted_ms": inserted_ms} for s in sources]


def record_row(record: ChainRecord) -> dict[str, Any]:
    return {"outbox_partition": record.partition, "seq": record.seq, "warning_id": record.warning_id,
            "warning_sha256": record.warning_sha256, "events_sha256": record.events_sha256,
            "rule_sha256": record.rule_sha256, "settings_sha256": record.settings_sha256,
            "prev_hash": record.prev_hash, "record_hash": record.record_hash,
            "inserted_ms": record.inserted_ms}


def row_record(row: dict[str, Any]) -> ChainRecord:
    return ChainRecord(partition=int(row["outbox_partition"]), seq=int(row["seq"]), warning_id=str(row["warning_id"]),
                       warning_sha256=str(row["warning_sha256"]), events_sha256=str(row["events_sha256"]),
                       rule_sha256=str(row["rule_sha256"]), settings_sha256=str(row["settings_sha256"]),
                       prev_hash=str(row["prev_hash"]),
                       record_hash=str(row["record_hash"]), inserted_ms=int(row["inserted_ms"]))


def chained_ids(store: WarningStore, warning_ids: Sequence[str]) -> set[str]:
    """Which of these warnings already have a chain record. A scan of the warning_id column (the table is sorted
    by partition and seq): milliseconds per million records; no FINAL, since existence is all that matters."""
    if not warning_ids:
        return set()
    rows = store.query(f"SELECT DISTINCT warning_id FROM {_table(store, CHAIN)} "
                       f"WHERE warning_id IN ({', '.join(literal(i) for i in warning_ids)})")
    return {str(row["warning_id"]) for row in rows}


def heads(store: WarningStore, partitions: Sequence[int]) -> dict[int, tuple[int, str]]:
    """Per outbox partition: (seq, record_hash) of its last chain record; partitions without one are absent.
    The last seq from a scan of the seq column, then the record by its primary key."""
    if not partitions:
        return {}
    table = _table(store, CHAIN)
    last = store.query(f"SELECT outbox_partition, max(seq) AS seq FROM {table} "
                       f"WHERE outbox_partition IN ({', '.join(str(int(p)) for p in partitions)}) "
                       f"GROUP BY outbox_partition")
    if not last:
        return {}
    wanted = " OR ".join(f"(outbox_partition = {int(r['outbox_partition'])} AND seq = {int(r['seq'])})" for r in last)
    rows = store.query(f"SELECT outbox_partition, seq, record_hash FROM {table} FINAL WHERE {wanted} "
                       f"ORDER BY outbox_partition, inserted_ms DESC LIMIT 1 BY outbox_partition")
    return {int(row["outbox_partition"]): (int(row["seq"]), str(row["record_hash"])) for row in rows}


def records(store: WarningStore, partition: int | None = None, first_seq: int | None = None,
            last_seq: int | None = None) -> list[ChainRecord]:
    conditions = []
    if partition is not None:
        conditions.append(f"outbox_partition = {int(partition)}")
    if first_seq is not None:
        conditions.append(f"seq >= {int(first_seq)}")
    if last_seq is not None:
        conditions.append(f"seq <= {int(last_seq)}")
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    rows = store.query(f"SELECT {', '.join(CHAIN_COLUMNS)} FROM {_table(store, CHAIN)} FINAL{where} "
                       f"ORDER BY outbox_partition, seq")
    return [row_record(row) for row in rows]


def record_of(store: WarningStore, warning_id: str) -> ChainRecord | None:
    rows = store.query(f"SELECT {', '.join(CHAIN_COLUMNS)} FROM {_table(store, CHAIN)} FINAL "
                       f"WHERE warning_id = {literal(warning_id)} ORDER BY outbox_partition, seq LIMIT 1")
    return row_record(rows[0]) if rows else None


def checkpoints(store: WarningStore, partition: int | None = None) -> list[dict[str, Any]]:
    where = f" WHERE outbox_partition = {int(partition)}" if partition is not None else ""
    return store.query(f"SELECT {', '.join(CHECKPOINT_COLUMNS)} FROM {_table(store, CHECKPOINTS)} FINAL{where} "
                       f"ORDER BY outbox_partition, first_seq")


def last_signed(store: WarningStore, partitions: Sequence[int]) -> dict[int, int]:
    """Per outbox partition: the last seq a checkpoint covers (absent: none yet)."""
    if not partitions:
        return {}
    rows = store.query(f"SELECT outbox_partition, max(last_seq) AS last FROM {_table(store, CHECKPOINTS)} "
                       f"WHERE outbox_partition IN ({', '.join(str(int(p)) for p in partitions)}) "
                       f"GROUP BY outbox_partition")
    return {int(row["outbox_partition"]): int(row["last"]) for row in rows}


def chain_partitions(store: WarningStore) -> list[int]:
    rows = store.query(f"SELECT DISTINCT outbox_partition FROM {_table(store, CHAIN)} ORDER BY outbox_partition")
    return [int(row["outbox_partition"]) for row in rows]


def evidence_of(store: WarningStore, warning_ids: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    """The stored evidence rows of these warnings, by warning id, in event-id order."""
    if not warning_ids:
        return {}
    found: dict[str, list[dict[str, Any]]] = {w: [] for w in warning_ids}
    for start in range(0, len(warning_ids), 500):
        part = warning_ids[start:start + 500]
        rows = store.query(f"SELECT {', '.join(EVENT_COLUMNS)} FROM {_table(store, EVENTS)} FINAL "
                           f"WHERE warning_id IN ({', '.join(literal(i) for i in part)}) "
                           f"ORDER BY warning_id, event_id, topic, kafka_partition, kafka_offset")
        for row in rows:
            found[str(row["warning_id"])].append(row)
    return found


def rule_texts(store: WarningStore) -> dict[str, str]:
    """Every stored rule text, by its SHA-256."""
    rows = store.query(f"SELECT rule_sha256, text FROM {_table(store, RULES)} FINAL")
    return {str(row["rule_sha256"]): str(row["text"]) for row in rows}


def rule_text(store: WarningStore, rule_sha256: str) -> str | None:
    rows = store.query(f"SELECT text FROM {_table(store, RULES)} FINAL WHERE rule_sha256 = {literal(rule_sha256)} "
                       f"LIMIT 1")
    return str(rows[0]["text"]) if rows else None


def settings_text(store: WarningStore, settings_sha256: str) -> str | None:
    rows = store.query(f"SELECT text FROM {_table(store, SETTINGS)} FINAL "
                       f"WHERE settings_sha256 = {literal(settings_sha256)} LIMIT 1")
    return str(rows[0]["text"]) if rows else None


def settings_texts(store: WarningStore) -> dict[str, str]:
    """Every stored detector-settings text, by its SHA-256."""
    rows = store.query(f"SELECT settings_sha256, text FROM {_table(store, SETTINGS)} FINAL")
    return {str(row["settings_sha256"]): str(row["text"]) for row in rows}


def warnings_by_id(store: WarningStore, warning_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Stored warning rows (the copy FINAL keeps) by id."""
    from .schema import COLUMNS, TABLE
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(warning_ids), 500):
        part = warning_ids[start:start + 500]
        if not part:
            continue
        rows = store.query(f"SELECT {', '.join(COLUMNS)} FROM {identifier(store.database)}.{TABLE} FINAL "
                           f"WHERE warning_id IN ({', '.join(literal(i) for i in part)}) "
                           f"ORDER BY warning_id, inserted_ms DESC LIMIT 1 BY warning_id")
        for row in rows:
            found[str(row["warning_id"])] = row
    return found
