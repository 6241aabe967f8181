"""The warnings table: its DDL, its columns, and the mapping between an EarlyWarning and a row.

The DDL has one source, stream/sinks/warnings.sql, shipped as package data so an installed worker can create
the table without the repository at hand; deploy/clickhouse/warnings.sql is the operators' copy of that file.
"""

from __future__ import annotations

from importlib import resources
from typing import Any, Mapping

import orjson

from ..model.money import format_minor
from ..model.timefmt import format_ts
from ..model.warning import SEVERITY_RANK, EarlyWarning

TABLE = "warnings"

# The DDL with its comments; deploy/clickhouse/warnings.sql is the operator's byte-identical copy (a unit test
# compares them), mounted by docker-compose and the k8s manifests.
WARNINGS_SQL = resources.files(__package__).joinpath("warnings.sql").read_text(encoding="utf-8")
# The statement alone, as the store sends it.
WARNINGS_DDL = "\n".join(line for line in WARNINGS_SQL.splitlines() if not line.startswith("--")).strip() + "\n"

# Insertable columns, in DDL order (event_time is computed by ClickHouse).
COLUMNS: tuple[str, ...] = (
    "warning_id", "rule_id", "rule_version", "kind", "severity", "severity_rank", "score", "subject",
    "accounts", "loan_ids", "txn_ids", "amount_minor", "currency", "first_ts_ms", "event_ts_ms",
    "detected_at_ms", "summary", "evidence", "notify", "inserted_ms",
)


def warning_to_row(warning: EarlyWarning, inserted_ms: int) -> dict[str, Any]:
    """One row of the warnings table. Evidence is stored as compact JSON text with sorted keys."""
    return {
        "warning_id": warning.warning_id, "rule_id": warning.rule_id, "rule_version": warning.rule_version,
        "kind": warning.kind, "severity": warning.severity, "severity_rank": SEVERITY_RANK[warning.severity],
        "score": float(warning.score), "subject": warning.subject, "accounts": list(warning.accounts),
        "loan_ids": list(warning.loan_ids), "txn_ids": list(warning.txn_ids),
        "amount_minor": int(warning.amount), "currency": warning.currency, "first_ts_ms": int(warning.first_ts),
        "event_ts_ms": int(warning.event_ts), "detected_at_ms": int(warning.detected_at),
        "summary": warning.summary,
        "evidence": orjson.dumps(dict(warning.evidence), option=orjson.OPT_SORT_KEYS).decode(),
        "notify": list(warning.notify), "inserted_ms": int(inserted_ms),
    }


def row_to_warning_json(row: Mapping[str, Any]) -> dict[str, Any]:
    """A stored row back in the docs/architecture.md §5 JSON shape (what `fundflow warnings --json` prints)."""
    return {
        "warning_id": row["warning_id"], "rule_id": row["rule_id"], "rule_version": row["rule_version"],
        "kind": row["kind"], "severity": row["severity"], "score": round(float(row["score"]), 4),
        "subject": row["subject"], "accounts": list(row["accounts"]), "loan_ids": list(row["loan_ids"]),
        "txn_ids": list(row["txn_ids"]), "amount": format_minor(int(row["amount_minor"])),
        "currency": row["currency"], "first_ts": format_ts(int(row["first_ts_ms"])),
        "event_ts": format_ts(int(row["event_ts_ms"])), "detected_at": format_ts(int(row["detected_at_ms"])),
        "summary": row["summary"], "evidence": orjson.loads(row["evidence"] or "{}"),
        "notify": list(row["notify"]),
    }
