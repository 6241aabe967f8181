"""Triage labels: an append-only table of label events beside the warnings, never a rewrite of a warning.

Every change of a warning's status, assignee or notes is one row: who, when, with which role, the status and
assignee before and after, and the note. A warning's current triage state is its newest label event
(argMax by time); a warning without one is `open` and unassigned. The DDL and every query run unchanged on
ClickHouse 18.16 and chDB: plain MergeTree, UInt64 epoch milliseconds, no DateTime64, no JSON functions.
"""

from __future__ import annotations

import secrets
from dataclasses import asdict, dataclass
from typing import Any, Iterable, Sequence

from .store import WarningStore, identifier, literal

TABLE = "warning_labels"
STATUSES = ("open", "investigating", "confirmed", "false_positive", "escalated")
CLOSED = frozenset({"confirmed", "false_positive", "escalated"})
NOTE_MAX = 4000
ASSIGNEE_MAX = 128

COLUMNS = ("label_id", "warning_id", "at_ms", "actor", "role", "status_from", "status_to",
           "assignee_from", "assignee_to", "note")

DDL = """CREATE TABLE IF NOT EXISTS {db}.{table} (
    label_id      String,
    warning_id    String,
    at_ms         UInt64,
    actor         String,
    role          String,
    status_from   String,
    status_to     String,
    assignee_from String,
    assignee_to   String,
    note          String
) ENGINE = MergeTree
ORDER BY (warning_id, at_ms, label_id)"""


@dataclass(frozen=True)
class LabelEvent:
    label_id: str
    warning_id: str
    at_ms: int
    actor: str
    role: str
    status_from: str
    status_to: str
    assignee_from: str
    assignee_to: str
    note: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> "LabelEvent":
        return cls(**{name: (int(row[name]) if name == "at_ms" else str(row[name])) for name in COLUMNS})


@dataclass(frozen=True)
class Triage:
    """A warning's triage state now: its newest label event, or open and unassigned."""

    status: str = "open"
    assignee: str = ""
    labelled_at_ms: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def new_label_id() -> str:
    return "l-" + secrets.token_hex(12)


def ensure_labels_table(store: WarningStore) -> None:
    store.execute(DDL.format(db=identifier(store.database), table=TABLE))


def table(store: WarningStore) -> str:
    return f"{identifier(store.database)}.{TABLE}"


def append(store: WarningStore, event: LabelEvent) -> None:
    """One INSERT ... SELECT of literals: the same statement on both engines, values escaped by `literal`."""
    values = ", ".join(literal(getattr(event, name)) for name in COLUMNS)
    store.execute(f"INSERT INTO {table(store)} ({', '.join(COLUMNS)}) SELECT {values}")


def current_sql(store: WarningStore) -> str:
    """warning_id, status, assignee, labelled_at_ms of every labelled warning."""
    return (f"SELECT warning_id, argMax(status_to, at_ms) AS status, argMax(assignee_to, at_ms) AS assignee, "
            f"max(at_ms) AS labelled_at_ms FROM {table(store)} GROUP BY warning_id")


def current(store: WarningStore, warning_ids: Sequence[str]) -> dict[str, Triage]:
    if not warning_ids:
        return {}
    ids = ", ".join(literal(i) for i in warning_ids)
    rows = store.query(f"SELECT warning_id, argMax(status_to, at_ms) AS status, "
                       f"argMax(assignee_to, at_ms) AS assignee, max(at_ms) AS labelled_at_ms "
                       f"FROM {table(store)} WHERE warning_id IN ({ids}) GROUP BY warning_id")
    return {str(r["warning_id"]): Triage(str(r["status"]), str(r["assignee"]), int(r["labelled_at_ms"]))
            for r in rows}


def history(store: WarningStore, warning_id: str) -> list[LabelEvent]:
    rows = store.query(f"SELECT {', '.join(COLUMNS)} FROM {table(store)} WHERE warning_id = {literal(warning_id)} "
                       f"ORDER BY at_ms, label_id")
    return [LabelEvent.from_row(row) for row in rows]


def exists(store: WarningStore) -> bool:
    """Whether anybody has labelled in this store yet: readers (an evidence export, a feed of confirmed warnings)
    ask instead of creating the table."""
    answer = store.query(f"EXISTS TABLE {table(store)}")
    return bool(answer) and bool(int(next(iter(answer[0].values()))))


def history_if_any(store: WarningStore, warning_id: str) -> list[LabelEvent]:
    """The warning's label events; none when the store has no labels table."""
    return history(store, warning_id) if exists(store) else []


def every_event(store: WarningStore) -> list[LabelEvent]:
    rows = store.query(f"SELECT {', '.join(COLUMNS)} FROM {table(store)} ORDER BY warning_id, at_ms, label_id")
    return [LabelEvent.from_row(row) for row in rows]


def known_label_ids(store: WarningStore, label_ids: Iterable[str]) -> set[str]:
    ids = list(label_ids)
    if not ids:
        return set()
    rows = store.query(f"SELECT DISTINCT label_id FROM {table(store)} "
                       f"WHERE label_id IN ({', '.join(literal(i) for i in ids)})")
    return {str(r["label_id"]) for r in rows}


def status_condition(store: WarningStore, status: str) -> str:
    """A WHERE condition on the warnings table selecting warnings whose current status is `status`."""
    if status == "open":
        return (f"warning_id NOT IN (SELECT warning_id FROM ({current_sql(store)}) "
                f"WHERE status != 'open')")
    return f"warning_id IN (SELECT warning_id FROM ({current_sql(store)}) WHERE status = {literal(status)})"


def assignee_condition(store: WarningStore, assignee: str) -> str:
    return (f"warning_id IN (SELECT warning_id FROM ({current_sql(store)}) "
            f"WHERE assignee = {literal(assignee)})")
