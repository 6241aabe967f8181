"""The warning store on a ClickHouse server, over the native protocol (clickhouse-driver).

A fresh connection is made when the previous one broke, so a server that restarts is picked up again by the
next retry without rebuilding the sink.
"""

from __future__ import annotations

import logging
from typing import Any, Sequence
from urllib.parse import urlparse

from ..errors import CONNECT_TIMEOUT_S, not_answering
from .schema import COLUMNS, TABLE
from .store import StoreError, WarningStore, identifier, qualified_ddl

SEND_RECEIVE_TIMEOUT_S = 30
# Server error codes that no retry can fix (bad SQL or types): reported as non-retryable.
_PERMANENT_CODES = {27, 36, 41, 43, 44, 47, 53, 62, 70, 72, 117}
# The driver logs a full traceback for every refused connection; the sink's retry log line says it once.
logging.getLogger("clickhouse_driver.connection").setLevel(logging.ERROR)


class NativeStore(WarningStore):
    def __init__(self, url: str) -> None:
        parsed = urlparse(url)
        if parsed.scheme not in ("clickhouse", "clickhouses") or not parsed.hostname:
            raise StoreError(f"expected clickhouse://HOST:PORT/DB, got {url!r}", retryable=False)
        self.url = url
        self.host = parsed.hostname
        try:
            port = parsed.port
        except ValueError:
            raise StoreError(f"expected clickhouse://HOST:PORT/DB with a port 1-65535, got {url!r}",
                             retryable=False) from None
        self.port = port or (9440 if parsed.scheme == "clickhouses" else 9000)
        self.database = parsed.path.strip("/") or "default"
        self.address = f"{parsed.scheme}://{self.host}:{self.port}/{self.database}"   # never the password
        identifier(self.database)
        self.user = parsed.username or "default"
        self.password = parsed.password or ""
        self.secure = parsed.scheme == "clickhouses"
        self._client = None

    def for_another_thread(self) -> "NativeStore":
        """A connection of its own: a clickhouse-driver client serves one call at a time."""
        return NativeStore(self.url)

    def _new_client(self, database: str):
        from clickhouse_driver import Client
        return Client(host=self.host, port=self.port, database=database, user=self.user, password=self.password,
                      secure=self.secure, connect_timeout=CONNECT_TIMEOUT_S,
                      send_receive_timeout=SEND_RECEIVE_TIMEOUT_S)

    def _execute(self, sql: str, params: Any = None, **kwargs: Any):
        from clickhouse_driver.errors import Error as DriverError
        from clickhouse_driver.errors import ServerException
        if self._client is None:
            self._client = self._new_client(self.database)
        try:
            return self._client.execute(sql, params, **kwargs)
        except ServerException as exc:
            raise StoreError(f"the warning store at {self.address} refused the query: {exc.message[:300]}",
                             retryable=exc.code not in _PERMANENT_CODES) from None
        except (DriverError, OSError, EOFError) as exc:
            self._drop_client()
            raise StoreError(not_answering("warning store", self.address, exc)) from None

    def _drop_client(self) -> None:
        if self._client is not None:
            try:
                self._client.disconnect()
            except Exception:  # a broken connection may fail to close too; it is being discarded anyway
                pass
            self._client = None

    def ensure_schema(self) -> None:
        from clickhouse_driver.errors import Error as DriverError
        bootstrap = self._new_client("default")
        try:
            bootstrap.execute(f"CREATE DATABASE IF NOT EXISTS {identifier(self.database)}")
        except (DriverError, OSError, EOFError) as exc:
            raise StoreError(not_answering("warning store", self.address, f"creating database {self.database!r}: "
                                                                            f"{exc}")) from None
        finally:
            bootstrap.disconnect()
        self._execute(qualified_ddl(self.database))

    def insert_rows(self, rows: Sequence[dict[str, Any]]) -> None:
        self.insert_into(TABLE, COLUMNS, rows)

    def insert_into(self, table: str, columns: Sequence[str], rows: Sequence[dict[str, Any]]) -> None:
        if not rows:
            return
        values = [tuple(row[column] for column in columns) for row in rows]
        self._execute(f"INSERT INTO {identifier(self.database)}.{identifier(table)} ({', '.join(columns)}) VALUES",
                      values)

    def execute(self, sql: str) -> None:
        self._execute(sql)

    def query(self, sql: str) -> list[dict[str, Any]]:
        rows, columns = self._execute(sql, with_column_types=True)
        names = [name for name, _ in columns]
        return [dict(zip(names, row)) for row in rows]

    def close(self) -> None:
        self._drop_client()
