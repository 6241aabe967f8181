"""One warning in full, as `fundflow warnings show` prints it: every field, then the path of the money.

The list view fits a warning on one line and cuts it; triage needs all of it. Field names are the JSON
names (docs/architecture.md §5), so what an analyst reads here is what `--json` and the store call it;
amounts read as in the list view (4312.35 CNY) and times as RFC 3339.
"""

from __future__ import annotations

import textwrap
from typing import Any, Mapping

import orjson

from ..detection.kinds._common import format_elapsed
from ..model.money import format_minor
from ..model.timefmt import format_ts
from ..model.warning import EarlyWarning
from .evidence_view import path_lines, printable

WIDTH = 110
LABEL = 14
MONEY_KEYS = frozenset({"loan_amount", "origin_amount", "scattered", "amounts"})    # evidence amounts, as text
SECONDS_KEYS = frozenset({"elapsed_s", "max_dwell_s"})


def render_warning(warning: EarlyWarning) -> str:
    w = warning
    rows: list[tuple[str, str]] = [
        ("warning_id", w.warning_id), ("rule_id", w.rule_id), ("rule_version", w.rule_version), ("kind", w.kind),
        ("severity", w.severity), ("score", f"{w.score:.4f}".rstrip("0").rstrip(".")), ("subject", w.subject),
        ("amount", f"{format_minor(w.amount)} {w.currency}"),
        ("first_ts", f"{format_ts(w.first_ts)}  (the earliest event of the evidence)"),
        ("event_ts", f"{format_ts(w.event_ts)}  (the event that completed the pattern, "
                     f"{format_elapsed(w.event_ts - w.first_ts)} later)"),
        ("detected_at", format_ts(w.detected_at)), ("summary", w.summary),
        ("accounts", _listed(w.accounts)), ("loan_ids", _listed(w.loan_ids)), ("txn_ids", _listed(w.txn_ids)),
        ("notify", _listed(w.notify) if w.notify else "(none)"),
    ]
    lines = [_row(name, value) for name, value in rows]
    lines.append("evidence")
    lines += [_row(f"  {key}", _evidence_value(key, value, w.currency), indent=LABEL + 2)
              for key, value in sorted(w.evidence.items())]
    lines += ["", "money path"] + [f"  {line}" for line in path_lines(w)]
    return "\n".join(lines)


def _row(name: str, value: str, *, indent: int = LABEL) -> str:
    label = printable(name).ljust(indent - 1) + " "
    return textwrap.fill(printable(value), width=WIDTH, initial_indent=label, subsequent_indent=" " * len(label),
                         break_long_words=False, break_on_hyphens=False, drop_whitespace=True) or label.rstrip()


def _listed(items: tuple[str, ...] | list[Any]) -> str:
    return f"({len(items)}) " + ", ".join(str(item) for item in items) if items else "(none)"


def _evidence_value(key: str, value: Any, currency: str) -> str:
    if key == "paths" and isinstance(value, list):
        return f"{len(value)} path{'s' if len(value) != 1 else ''}, drawn below"
    if key in MONEY_KEYS and isinstance(value, str):
        return f"{value} {currency}"
    if key in MONEY_KEYS and isinstance(value, list):
        return ", ".join(f"{item} {currency}" for item in value)
    if key in SECONDS_KEYS and isinstance(value, int) and not isinstance(value, bool):
        return f"{value} ({format_elapsed(value * 1000)})"
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return ", ".join(value)
    if isinstance(value, Mapping) and all(isinstance(item, int) for item in value.values()):
        return ", ".join(f"{name} {count}" for name, count in value.items())     # evidence.truncated
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
