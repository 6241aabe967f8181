"""The warning store embedded in the process (chDB: current ClickHouse as a library), persisted at a path.

The single-machine default (`chdb://.fundflow/chdb`): no server to run, the same schema and SQL as a
ClickHouse server. chDB holds one persistent session per process, so a store owns its session and
closes it; open one store per path at a time. Calls on one store are serialised by a lock, so the process that
owns the store may share it between threads (the worker's sink and the console it serves).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Sequence

import orjson

from .schema import COLUMNS, TABLE
from .store import DEFAULT_CHDB_DATABASE, StoreError, WarningStore, identifier, qualified_ddl


class ChdbStore(WarningStore):
    def __init__(self, path: str | Path, database: str = DEFAULT_CHDB_DATABASE) -> None:
        from chdb import session as chdb_session
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.database = database
        self._lock = threading.Lock()
        identifier(database)
        try:
            self._session = chdb_session.Session(str(self.path))
        except Exception as exc:  # chDB raises its own error types for a locked or unreadable path
            raise StoreError(f"cannot open the embedded store at {self.path}: {exc}", retryable=False) from None

    def _run(self, sql: str, fmt: str = "CSV") -> bytes:
        with self._lock:
            return self._run_locked(sql, fmt)

    def _run_locked(self, sql: str, fmt: str) -> bytes:
        if self._session is None:
            raise StoreError(f"the embedded store at {self.path} is closed", retryable=False)
        try:
            result = self._session.query(sql, fmt)
        except Exception as exc:  # chDB reports SQL and storage errors as generic exceptions
            raise StoreError(f"the embedded store at {self.path} refused the query: {str(exc)[:300]}") from None
        return result.bytes() if result is not None else b""

    def ensure_schema(self) -> None:
        self._run(f"CREATE DATABASE IF NOT EXISTS {identifier(self.database)}")
        self._run(qualified_ddl(self.database))

    def insert_rows(self, rows: Sequence[dict[str, Any]]) -> None:
        self.insert_into(TABLE, COLUMNS, rows)

    def insert_into(self, table: str, columns: Sequence[str], rows: Sequence[dict[str, Any]]) -> None:
        if not rows:
            return
        body = b"\n".join(orjson.dumps({column: row[column] for column in columns}) for row in rows)
        header = (f"INSERT INTO {identifier(self.database)}.{identifier(table)} ({', '.join(columns)}) "
                  f"FORMAT JSONEachRow\n")
        self._run(header + body.decode())

    def execute(self, sql: str) -> None:
        self._run(sql)

    def query(self, sql: str) -> list[dict[str, Any]]:
        # 64-bit integers as JSON numbers, not quoted strings, so rows look the same as from the server.
        raw = self._run(f"{sql} SETTINGS output_format_json_quote_64bit_integers = 0", "JSONEachRow")
        return [orjson.loads(line) for line in raw.splitlines() if line.strip()]

    def close(self) -> None:
        with self._lock:
            if self._session is not None:
                self._session.close()
                self._session = None
