"""What the demo prints at the end: a pure function of what was measured and what the store holds."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import orjson

from ...offline.evaluate import Evaluation, format_delay, format_percent
from ...model.money import format_minor

TOP_SEVERE = 3
MAX_PATH_HOPS = 8


@dataclass(frozen=True)
class DemoFigures:
    """Everything the summary reports besides the stored warnings."""

    events_produced: int
    events_consumed: int
    dead_letters: int
    warnings_raised: int
    processing_s: float
    pages_received: int
    pages_verified: int
    pages_refused: int
    storm_summaries: int
    store_url: str
    store_description: str
    query_commands: tuple[str, ...]
    truth_path: str
    log_paths: tuple[str, ...]
    wall_s: float
    note: str = ""
    send_rate: float = 0.0              # events/s the ledger was sent to Kafka at
    catch_up_s: float = 0.0             # from the last event sent to the worker having detected it
    pages_held: int = 0                 # warnings storm control held for their minute's summary page

    @property
    def rate(self) -> float:
        return self.events_consumed / self.processing_s if self.processing_s > 0 else 0.0


def severity_order(row: Mapping[str, Any]) -> tuple:
    """Most severe first: severity, then score, then the larger amount, then the earlier event."""
    return (-int(row["severity_rank"]), -float(row["score"]), -int(row["amount_minor"]), int(row["event_ts_ms"]),
            row["warning_id"])


def most_severe(rows: Sequence[Mapping[str, Any]], count: int = TOP_SEVERE) -> list[Mapping[str, Any]]:
    return sorted(rows, key=severity_order)[:count]


def evidence_path(row: Mapping[str, Any]) -> str:
    """The first money path of the evidence as `A → B → C` (or the accounts when a kind has no paths)."""
    try:
        evidence = orjson.loads(row.get("evidence") or "{}")
    except orjson.JSONDecodeError:
        evidence = {}
    paths = evidence.get("paths") if isinstance(evidence, dict) else None
    if isinstance(paths, list) and paths and isinstance(paths[0], list):
        path = [str(node) for node in paths[0]]
        if len(path) > MAX_PATH_HOPS + 1:
            path = path[:MAX_PATH_HOPS] + ["…", path[-1]]
        more = f"  (+{len(paths) - 1} more path{'s' if len(paths) > 2 else ''})" if len(paths) > 1 else ""
        return " → ".join(path) + more
    accounts = list(row.get("accounts") or ())
    return "accounts " + ", ".join(accounts[:6]) + (f", +{len(accounts) - 6}" if len(accounts) > 6 else "")


def warnings_by_rule(rows: Sequence[Mapping[str, Any]]) -> list[tuple[str, str, str, int]]:
    """(rule_id, kind, highest severity, count), most warnings first."""
    counts: Counter = Counter(row["rule_id"] for row in rows)
    kinds = {row["rule_id"]: row["kind"] for row in rows}
    severities: dict[str, tuple[int, str]] = {}
    for row in rows:
        current = severities.get(row["rule_id"])
        candidate = (int(row["severity_rank"]), row["severity"])
        if current is None or candidate > current:
            severities[row["rule_id"]] = candidate
    return [(rule, kinds[rule], severities[rule][1], n) for rule, n in sorted(counts.items(),
                                                                         key=lambda item: (-item[1], item[0]))]


def render(figures: DemoFigures, rows: Sequence[Mapping[str, Any]], stored: int, quality: Evaluation) -> str:
    out: list[str] = []
    section = out.append

    section("== Processed")
    section(f"events        {figures.events_consumed:,} of {figures.events_produced:,} consumed by the worker in "
            f"{figures.processing_s:.1f} s ({figures.rate:,.0f} events/s; sent to Kafka at "
            f"{figures.send_rate:,.0f} events/s)")
    section(f"caught up     {figures.catch_up_s:.1f} s after the last event was sent")
    section(f"dead letters  {figures.dead_letters:,}")
    section(f"warnings      {figures.warnings_raised:,} raised, {stored:,} in the store (deduplicated by warning_id)")

    section("")
    section("== Warnings by rule (from the store)")
    by_rule = warnings_by_rule(rows)
    width = max((len(rule) for rule, *_ in by_rule), default=4)
    for rule, kind, severity, count in by_rule:
        section(f"{rule:<{width}}  {kind:<15} {severity:<8} {count:>5}")
    if not by_rule:
        section("(no warnings)")

    section("")
    section(f"== The {TOP_SEVERE} most severe warnings")
    for number, row in enumerate(most_severe(rows), start=1):
        amount = f"{format_minor(int(row['amount_minor']))} {row['currency']}"
        section(f"{number}. [{row['severity']}] {row['rule_id']}  subject {row['subject']}  score "
                f"{float(row['score']):.2f}  amount {amount}")
        section(f"   {row['summary']}")
        section(f"   evidence: {evidence_path(row)}")
        txns = list(row["txn_ids"])
        section(f"   transactions: {', '.join(txns[:8])}{f', +{len(txns) - 8}' if len(txns) > 8 else ''}"
                f"   warning_id {row['warning_id']}")

    section("")
    section(f"== Quality against the planted truth ({figures.truth_path})")
    section(f"{'typology':<16} {'planted':>7} {'detected':>8} {'recall':>7} {'median delay':>12}")
    for kind, recall in list(quality.by_kind.items()) + [("ALL", quality.overall)]:
        section(f"{kind:<16} {recall.instances:>7} {recall.detected:>8} {format_percent(recall.recall):>7} "
                f"{format_delay(recall.median_delay_s):>12}")
    section(f"precision {format_percent(quality.precision)}: of {quality.warnings} warnings, "
            f"{quality.planted_warnings} on "
            f"planted instances, {quality.lookalike_warnings} on benign look-alikes, "
            f"{quality.background_warnings} on background")

    section("")
    section("== Pages")
    verified = f", {figures.pages_verified} signatures verified" if figures.pages_verified else ""
    storms = f", {figures.storm_summaries} of them storm summaries" if figures.storm_summaries else ""
    refused = f", {figures.pages_refused} refused" if figures.pages_refused else ""
    section(f"webhook received {figures.pages_received} page{'s' if figures.pages_received != 1 else ''}"
            f"{storms}{verified}{refused}")
    if figures.pages_held:
        section(f"storm control held {figures.pages_held} warning{'s' if figures.pages_held != 1 else ''} of rules "
                f"past page_storm_limit in a minute: one summary page per rule and minute, sent once that "
                f"minute is over")

    section("")
    section("== Where the warnings are")
    section(f"store   {figures.store_url}")
    section(f"        {figures.store_description}")
    for number, command in enumerate(figures.query_commands):
        section(f"{'query' if number == 0 else '':<7} {command}")
    if figures.note:
        section(f"        {figures.note}")
    section(f"logs    {', '.join(figures.log_paths)}")
    section(f"done in {figures.wall_s:.1f} s")
    return "\n".join(out)
