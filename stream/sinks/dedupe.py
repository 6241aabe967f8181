"""The page ledger: which warnings the pager has already handled, kept in a small SQLite file.

Why SQLite under data_dir rather than a `paged` table in ClickHouse: the pager must keep working (and keep
its promise never to page twice) while ClickHouse is down, a lookup happens before every page, and the file
sits next to the worker's other local state. It is also the pager's durable queue: a page is recorded as
queued (with its warning) before anything is sent, so a webhook outage of any length, or a restart in the
middle of one, delays pages but never drops them. It holds the warnings held back by storm control the same
way, so a restart before the end of the minute still sends their summary page. Two threads use it: the
worker's loop records (`PagerSink.handle`) and the delivery thread marks; one connection and a lock serialise
them, each call a few statements long.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Iterator

from ..model.warning import EarlyWarning

QUEUED = "queued"             # waiting for the webhook: delivered in order, retried until it answers
PAGED = "paged"               # sent on its own
HELD = "held"                 # storm control: waiting for its minute's summary page
GROUPED = "grouped"           # sent inside a summary page
DEAD_LETTERED = "deadlettered"  # refused by the webhook or undeliverable: in the dead-letter topic
FILE_NAME = "pager.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS pages (
    warning_id TEXT PRIMARY KEY,
    rule_id    TEXT NOT NULL,
    state      TEXT NOT NULL,
    minute     INTEGER NOT NULL,
    warning    BLOB,
    updated_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS pages_by_rule_minute ON pages (rule_id, minute, state);
"""


class PageLedger:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # autocommit: each record is durable
        self._db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
        self._lock = threading.Lock()
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    @classmethod
    def in_data_dir(cls, data_dir: str | Path) -> "PageLedger":
        return cls(Path(data_dir) / FILE_NAME)

    def _rows(self, sql: str, params: tuple) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    def state_of(self, warning_id: str) -> str | None:
        rows = self._rows("SELECT state FROM pages WHERE warning_id = ?", (warning_id,))
        return rows[0][0] if rows else None

    def record(self, warning: EarlyWarning, state: str, minute: int, now_ms: int) -> None:
        body = warning.to_json() if state in (HELD, QUEUED) else None
        self._rows(
            "INSERT INTO pages (warning_id, rule_id, state, minute, warning, updated_ms) VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (warning_id) DO UPDATE SET state = excluded.state, minute = excluded.minute, "
            "warning = excluded.warning, updated_ms = excluded.updated_ms",
            (warning.warning_id, warning.rule_id, state, minute, body, now_ms))

    def pages_in_minute(self, rule_id: str, minute: int) -> int:
        """Pages of this rule queued or sent on their own in this minute (what storm control counts)."""
        [(count,)] = self._rows("SELECT count(*) FROM pages WHERE rule_id = ? AND minute = ? AND state IN (?, ?)",
                                (rule_id, minute, PAGED, QUEUED))
        return int(count)

    def queued(self) -> list[EarlyWarning]:
        """Pages waiting for the webhook, oldest first."""
        rows = self._rows("SELECT warning FROM pages WHERE state = ? ORDER BY rowid", (QUEUED,))
        return [EarlyWarning.from_json(body) for (body,) in rows]

    def queue_stats(self, now_ms: int) -> tuple[int, float]:
        """(pages queued, seconds the oldest has waited)."""
        [(count, oldest)] = self._rows("SELECT count(*), min(updated_ms) FROM pages WHERE state = ?", (QUEUED,))
        return int(count), (max(0.0, (now_ms - oldest) / 1000) if oldest is not None else 0.0)

    def held_before(self, minute: int) -> Iterator[tuple[str, int, list[EarlyWarning]]]:
        """(rule_id, minute, warnings) of every storm group whose minute is over."""
        rows = self._rows("SELECT rule_id, minute, warning FROM pages WHERE state = ? AND minute < ? "
                          "ORDER BY rule_id, minute, rowid", (HELD, minute))
        groups: dict[tuple[str, int], list[EarlyWarning]] = {}
        for rule_id, held_minute, body in rows:
            groups.setdefault((rule_id, held_minute), []).append(EarlyWarning.from_json(body))
        for (rule_id, held_minute), warnings in groups.items():
            yield rule_id, held_minute, warnings

    def mark(self, warning_ids: list[str], state: str, now_ms: int) -> None:
        with self._lock:
            self._db.execute("BEGIN")
            self._db.executemany("UPDATE pages SET state = ?, warning = NULL, updated_ms = ? WHERE warning_id = ?",
                                 [(state, now_ms, warning_id) for warning_id in warning_ids])
            self._db.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            self._db.close()
