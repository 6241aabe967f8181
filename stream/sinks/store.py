"""The warning store: one small interface, two engines (a ClickHouse server, or embedded chDB).

Both speak the same SQL, so the schema, the inserts and the analyst queries are written once, here, and
each engine only moves rows and text. Values are rendered as ClickHouse literals by `literal`, which
escapes quotes and backslashes, so filters typed by an analyst can never change a query's shape.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Sequence

from ..errors import SinkError
from ..model.warning import SEVERITY_RANK
from .schema import COLUMNS, TABLE, WARNINGS_DDL

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
DEFAULT_CHDB_DATABASE = "fundflow"


class StoreError(SinkError):
    """The warning store refused or could not be reached; `retryable` says whether trying again may help."""


def literal(value: Any) -> str:
    """A ClickHouse literal for str / int / float / list values."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(literal(item) for item in value) + "]"
    raise TypeError(f"cannot render {type(value).__name__} {value!r} as a ClickHouse literal")


def identifier(name: str) -> str:
    if not _IDENTIFIER.match(name):
        raise StoreError(f"expected a database name of letters, digits and '_', got {name!r}", retryable=False)
    return f"`{name}`"


def qualified_ddl(database: str, table: str = TABLE) -> str:
    """The table DDL with the table name qualified by `database` (the .sql file is database-agnostic)."""
    prefix = "CREATE TABLE IF NOT EXISTS "
    assert WARNINGS_DDL.startswith(prefix + TABLE)
    identifier(table)
    return f"{prefix}{identifier(database)}.{table}{WARNINGS_DDL[len(prefix) + len(TABLE):]}"


DEDUPLICATION_KEY = "warning_id"


@dataclass(frozen=True)
class Migration:
    done: bool
    detail: str
    rows_before: int = 0
    warnings_after: int = 0
    kept_as: str | None = None


@dataclass(frozen=True)
class WarningFilter:
    """What `fundflow warnings` asks for; every field is optional. `min_severity` means that level or above;
    `since_ms` compares with the warning's event time."""

    rule_id: str | None = None
    account: str | None = None
    min_severity: str | None = None
    since_ms: int | None = None
    limit: int = 50

    def __post_init__(self) -> None:
        if self.min_severity is not None and self.min_severity not in SEVERITY_RANK:
            raise ValueError(f"expected a severity among {', '.join(SEVERITY_RANK)}, got {self.min_severity!r}")
        if self.limit <= 0:
            raise ValueError(f"expected a positive limit, got {self.limit}")


def select_warnings_sql(database: str, where: WarningFilter) -> str:
    """Deduplicated (FINAL, and one row per warning_id), newest event first."""
    conditions = []
    if where.rule_id is not None:
        conditions.append(f"rule_id = {literal(where.rule_id)}")
    if where.account is not None:
        conditions.append(f"has(accounts, {literal(where.account)})")
    if where.min_severity is not None:
        conditions.append(f"severity_rank >= {SEVERITY_RANK[where.min_severity]}")
    if where.since_ms is not None:
        conditions.append(f"event_ts_ms >= {max(where.since_ms, 0)}")
    where_sql = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    return (f"SELECT {', '.join(COLUMNS)} FROM {identifier(database)}.{TABLE} FINAL{where_sql} "
            f"ORDER BY event_ts_ms DESC, warning_id LIMIT 1 BY warning_id LIMIT {int(where.limit)}")


class WarningStore(ABC):
    """Where warnings are kept. Inserts are idempotent by warning_id (ReplacingMergeTree + FINAL)."""

    database: str

    @abstractmethod
    def ensure_schema(self) -> None:
        """Create the database and the warnings table when missing; safe to call at every start."""

    @abstractmethod
    def insert_rows(self, rows: Sequence[dict[str, Any]]) -> None:
        """Store rows (dicts keyed by schema.COLUMNS). Raises StoreError when the store cannot take them."""

    def insert_into(self, table: str, columns: Sequence[str], rows: Sequence[dict[str, Any]]) -> None:
        """Store rows into another table of the store's database (the evidence tables)."""
        raise StoreError(f"{type(self).__name__} cannot insert into {table}", retryable=False)

    @abstractmethod
    def query(self, sql: str) -> list[dict[str, Any]]:
        """Run a SELECT and return its rows as dicts."""

    @abstractmethod
    def execute(self, sql: str) -> None:
        """Run a statement that returns no rows (DDL, INSERT ... SELECT, OPTIMIZE)."""

    def sorting_key(self, table: str = TABLE) -> str | None:
        """The table's sorting key as ClickHouse reports it, or None when the table does not exist."""
        rows = self.query(f"SELECT sorting_key FROM system.tables WHERE database = {literal(self.database)} "
                          f"AND name = {literal(table)}")
        return str(rows[0]["sorting_key"]) if rows else None

    def schema_problem(self) -> str | None:
        """What is wrong with an existing warnings table, in words an operator can act on; None when right."""
        key = self.sorting_key()
        if key is None or key.replace(" ", "") == DEDUPLICATION_KEY:
            return None
        return (f"the warnings table {self.database}.{TABLE} sorts by ({key}), so copies of one warning with "
                f"different event times are never merged and count() FINAL overcounts; stop the workers and run "
                f"`fundflow store migrate` to rebuild it keyed by {DEDUPLICATION_KEY} alone")

    def migrate(self, now_ms: int) -> "Migration":
        """Rebuild a warnings table of an older layout keyed by warning_id alone, keeping the old table beside it
        (renamed) until the operator drops it. Safe to run again: a table already keyed right is left alone."""
        db = identifier(self.database)
        key = self.sorting_key()
        if key is None:
            self.ensure_schema()
            return Migration(done=False, detail=f"no warnings table in {self.database}: created it")
        if key.replace(" ", "") == DEDUPLICATION_KEY:
            return Migration(done=False, detail=f"{self.database}.{TABLE} is already keyed by {DEDUPLICATION_KEY}")
        rows_before = int(self.query(f"SELECT count() AS n FROM {db}.{TABLE}")[0]["n"])
        staging, kept = f"{TABLE}_migrating", f"{TABLE}_before_migration_{now_ms}"
        self.execute(f"DROP TABLE IF EXISTS {db}.{staging}")
        self.execute(qualified_ddl(self.database, staging))
        columns = ", ".join(COLUMNS)
        self.execute(f"INSERT INTO {db}.{staging} ({columns}) SELECT {columns} FROM {db}.{TABLE}")
        self.execute(f"RENAME TABLE {db}.{TABLE} TO {db}.{kept}, {db}.{staging} TO {db}.{TABLE}")
        self.execute(f"OPTIMIZE TABLE {db}.{TABLE} FINAL")
        distinct = self.count_distinct()
        return Migration(done=True, rows_before=rows_before, warnings_after=distinct, kept_as=kept,
                         detail=f"{self.database}.{TABLE} rebuilt keyed by {DEDUPLICATION_KEY}: {rows_before} rows "
                                f"-> {distinct} warnings; the old table is kept as {self.database}.{kept} "
                                f"(DROP TABLE it once checked)")

    def close(self) -> None:
        """Release connections; the store may not be used afterwards."""

    def for_another_thread(self) -> "WarningStore":
        """A store that another thread may use while this one is in use: the evidence chain is written that
        way, so its appends never hold up the next warnings insert. By default this store itself, for kinds
        that serialise their calls (one session per process)."""
        return self

    def select_warnings(self, where: WarningFilter) -> list[dict[str, Any]]:
        return self.query(select_warnings_sql(self.database, where))

    def warning_by_id(self, warning_id: str) -> dict[str, Any] | None:
        """The stored row of one warning (the copy inserted last, as FINAL keeps), or None."""
        rows = self.query(f"SELECT {', '.join(COLUMNS)} FROM {identifier(self.database)}.{TABLE} FINAL "
                          f"WHERE warning_id = {literal(warning_id)} ORDER BY inserted_ms DESC LIMIT 1")
        return rows[0] if rows else None

    def warning_ids_starting(self, prefix: str, limit: int = 4) -> list[str]:
        """Stored warning ids that begin with `prefix`, sorted: what an analyst who copied part of an id meant.
        `substring` (not LIKE, whose wildcards would need escaping; not startsWith, missing from older servers)
        compares the first bytes."""
        size = len(prefix.encode())
        rows = self.query(f"SELECT DISTINCT warning_id FROM {identifier(self.database)}.{TABLE} "
                          f"WHERE substring(warning_id, 1, {size}) = {literal(prefix)} "
                          f"ORDER BY warning_id LIMIT {int(limit)}")
        return [str(row["warning_id"]) for row in rows]

    def rule_ids(self) -> list[str]:
        """The rules that have warnings in the store, sorted."""
        rows = self.query(f"SELECT DISTINCT rule_id FROM {identifier(self.database)}.{TABLE} ORDER BY rule_id")
        return [str(row["rule_id"]) for row in rows]

    def newest_event_ms(self) -> int | None:
        """The event time of the newest stored warning: what "the last 2 hours" means for a ledger's warnings."""
        rows = self.query(f"SELECT count() AS n, max(event_ts_ms) AS newest FROM {identifier(self.database)}.{TABLE}")
        return int(rows[0]["newest"]) if rows and int(rows[0]["n"]) else None

    def count_distinct(self) -> int:
        """Warnings stored, after deduplication."""
        rows = self.query(f"SELECT count() AS n FROM {identifier(self.database)}.{TABLE} FINAL")
        return int(rows[0]["n"])

    def __enter__(self) -> "WarningStore":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
