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
from urllib.parse import urlparse

from ..errors import SinkError
from ..warning import SEVERITY_RANK
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


def qualified_ddl(database: str) -> str:
    """The table DDL with the table name qualified by `database` (the .sql file is database-agnostic)."""
    prefix = "CREATE TABLE IF NOT EXISTS "
    assert WARNINGS_DDL.startswith(prefix + TABLE)
    return f"{prefix}{identifier(database)}.{TABLE}{WARNINGS_DDL[len(prefix) + len(TABLE):]}"


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
        # event_time lets ClickHouse skip whole monthly partitions; event_ts_ms keeps the millisecond cut.
        conditions.append(f"event_time >= toDateTime({max(where.since_ms, 0) // 1000})")
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

    @abstractmethod
    def query(self, sql: str) -> list[dict[str, Any]]:
        """Run a SELECT and return its rows as dicts."""

    def close(self) -> None:
        """Release connections; the store may not be used afterwards."""

    def select_warnings(self, where: WarningFilter) -> list[dict[str, Any]]:
        return self.query(select_warnings_sql(self.database, where))

    def count_distinct(self) -> int:
        """Warnings stored, after deduplication."""
        rows = self.query(f"SELECT count() AS n FROM {identifier(self.database)}.{TABLE} FINAL")
        return int(rows[0]["n"])

    def __enter__(self) -> "WarningStore":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def open_store(url: str) -> WarningStore:
    """clickhouse://HOST:PORT/DB -> a server store; chdb:///PATH (or chdb://RELATIVE) -> an embedded one."""
    parsed = urlparse(url)
    if parsed.scheme == "chdb":
        from .chdb_store import ChdbStore
        path = (parsed.netloc + parsed.path) if parsed.netloc else parsed.path
        return ChdbStore(path)
    if parsed.scheme in ("clickhouse", "clickhouses"):
        from .clickhouse import NativeStore
        return NativeStore(url)
    raise StoreError(f"expected clickhouse://HOST:PORT/DB or chdb:///PATH as the warning store, got {url!r}",
                     retryable=False)
