"""Label events in and out of the store as CSV or JSON lines, for teams that keep cases in their own tool.

Export writes every label event (the columns of stream.sinks.labels, in time order per warning). Import
appends events: each is checked (a known status, a warning in the store, bounded text), an event whose
label_id is already stored is skipped, so importing a file twice adds nothing; an event without a label_id
gets one, without a time gets now. Nothing is rewritten: an import is more label events.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import Any, Callable, Iterable, TextIO

import orjson

from ..errors import FundflowError
from ..sinks.schema import TABLE
from ..sinks.store import WarningStore, identifier, literal
from ..sinks import labels

FORMATS = ("csv", "jsonl")


@dataclass(frozen=True)
class ImportResult:
    added: int
    skipped: int


def export(store: WarningStore, out: TextIO, fmt: str) -> int:
    events = labels.every_event(store)
    if fmt == "csv":
        writer = csv.DictWriter(out, fieldnames=labels.COLUMNS, lineterminator="\n")
        writer.writeheader()
        for event in events:
            writer.writerow(event.to_dict())
    else:
        for event in events:
            out.write(orjson.dumps(event.to_dict()).decode() + "\n")
    return len(events)


def read(text: str, fmt: str, *, source: str) -> list[dict[str, Any]]:
    if fmt == "csv":
        return [dict(row) for row in csv.DictReader(io.StringIO(text))]
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = orjson.loads(line)
        except orjson.JSONDecodeError:
            raise FundflowError(f"{source}:{number}: not a JSON object") from None
        if not isinstance(row, dict):
            raise FundflowError(f"{source}:{number}: expected a JSON object, got {type(row).__name__}")
        rows.append(row)
    return rows


def _event(row: dict[str, Any], where: str, now_ms: int) -> labels.LabelEvent:
    def text(name: str, default: str = "", limit: int = 256) -> str:
        value = row.get(name)
        value = default if value in (None, "") else value
        if not isinstance(value, str):
            raise FundflowError(f"{where}: {name}: expected text")
        if len(value) > limit:
            raise FundflowError(f"{where}: {name}: at most {limit} characters")
        return value

    for name in ("status_from", "status_to"):
        value = text(name, "open")
        if value not in labels.STATUSES:
            raise FundflowError(f"{where}: {name}: expected one of {', '.join(labels.STATUSES)}, got {value[:40]!r}")
    at = row.get("at_ms")
    if at in (None, ""):
        at_ms = now_ms
    elif isinstance(at, int) or (isinstance(at, str) and at.strip().isdigit()):
        at_ms = int(at)
    else:
        raise FundflowError(f"{where}: at_ms: expected epoch milliseconds")
    warning_id = text("warning_id")
    if not warning_id:
        raise FundflowError(f"{where}: warning_id: missing")
    return labels.LabelEvent(
        label_id=text("label_id") or labels.new_label_id(), warning_id=warning_id, at_ms=at_ms,
        actor=text("actor", "import"), role=text("role", "import", 32), status_from=text("status_from", "open"),
        status_to=text("status_to", "open"), assignee_from=text("assignee_from", "", labels.ASSIGNEE_MAX),
        assignee_to=text("assignee_to", "", labels.ASSIGNEE_MAX), note=text("note", "", labels.NOTE_MAX))


def import_rows(store: WarningStore, rows: Iterable[dict[str, Any]], *, source: str,
                clock: Callable[[], int]) -> ImportResult:
    """Check every row first (one bad row imports nothing), then append the new ones."""
    now = clock()
    events = [_event(row, f"{source}: event {number}", now) for number, row in enumerate(rows, 1)]
    labels.ensure_labels_table(store)
    ids = sorted({e.warning_id for e in events})
    known: set[str] = set()
    for start in range(0, len(ids), 1000):
        part = ids[start:start + 1000]
        known |= {str(r["warning_id"]) for r in store.query(
            f"SELECT DISTINCT warning_id FROM {identifier(store.database)}.{TABLE} "
            f"WHERE warning_id IN ({', '.join(literal(i) for i in part)})")}
    missing = [e.warning_id for e in events if e.warning_id not in known]
    if missing:
        raise FundflowError(f"{source}: {len(missing)} events name warnings that are not in the store, e.g. "
                            f"{missing[0][:80]!r}; nothing imported")
    stored = labels.known_label_ids(store, [e.label_id for e in events])
    added = 0
    seen = set(stored)
    for event in events:
        if event.label_id in seen:
            continue
        labels.append(store, event)
        seen.add(event.label_id)
        added += 1
    return ImportResult(added=added, skipped=len(events) - added)
