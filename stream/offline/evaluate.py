"""How well a rule pack finds what was planted: recall per typology, precision, and noise on look-alikes.

Pure functions over warnings (docs/architecture.md §5 dicts, as `fundflow replay` writes them) and a `Truth` (the simulator's
or the AMLSim benchmark's: same format).

**Overlap.** A warning *overlaps* a labelled instance when it shares at least one transaction id, or at
least one loan id, or at least two accounts with it:
- a shared txn id means the warning's evidence contains the instance's own money movement;
- a shared loan id means the warning follows the instance's loan, even if through other transfers of it;
- two shared accounts mean the warning is about a relationship inside the instance (AMLSim instances have no
  loans and span months, so a rule with a shorter window sees other edges between the same accounts).
  One shared account is not enough: a busy account that merely paid a member once would count as a hit.
An instance is *detected* when at least one warning overlaps it (and *detected by its own kind* when one of
those warnings has the instance's `kind`). Precision is the share of warnings that overlap some planted
instance; warnings overlapping only look-alikes are counted per look-alike kind; the rest are background.
Warnings are deduplicated by `warning_id` first (sinks and replays may repeat them; the id is stable).

**Delay.** When the truth gives an instance's `first_ts` (the simulator's does; AMLSim's does not), the
detection delay of a detected instance is the `event_ts` of its earliest overlapping warning minus that
`first_ts`: how long, in event time, the laundering ran before the first warning. Reported per typology as
median and maximum.
"""

from __future__ import annotations

import gzip
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import orjson

from ..errors import FundflowError
from ..simulate.truth import Instance, Truth, optional_ts, string_list

MIN_SHARED_ACCOUNTS = 2
OVERLAP_RULE = ("shares >= 1 txn id, or >= 1 loan id, or >= 2 accounts with the instance")


class EvaluationError(FundflowError):
    """A warnings file cannot be read; the message names the file, the line and the field."""


@dataclass(frozen=True, slots=True)
class WarningRef:
    """The part of a warning the evaluation needs."""

    warning_id: str
    rule_id: str
    kind: str
    accounts: tuple[str, ...] = ()
    loan_ids: tuple[str, ...] = ()
    txn_ids: tuple[str, ...] = ()
    event_ts: int | None = None     # epoch ms of the event that completed the pattern


@dataclass(frozen=True)
class KindRecall:
    instances: int
    detected: int
    detected_same_kind: int
    delays_s: tuple[float, ...] = ()    # detection delays of the detected instances whose start is known

    @property
    def median_delay_s(self) -> float | None:
        if not self.delays_s:
            return None
        ordered = sorted(self.delays_s)
        middle = len(ordered) // 2
        return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2

    @property
    def max_delay_s(self) -> float | None:
        return max(self.delays_s) if self.delays_s else None

    @property
    def recall(self) -> float | None:
        return self.detected / self.instances if self.instances else None

    @property
    def recall_same_kind(self) -> float | None:
        return self.detected_same_kind / self.instances if self.instances else None

    def to_dict(self) -> dict[str, Any]:
        return {"instances": self.instances, "detected": self.detected, "recall": _round(self.recall),
                "detected_same_kind": self.detected_same_kind, "recall_same_kind": _round(self.recall_same_kind),
                "median_delay_s": _round(self.median_delay_s), "max_delay_s": _round(self.max_delay_s)}


@dataclass(frozen=True)
class LookalikeNoise:
    instances: int
    touched: int            # look-alike instances some warning overlaps
    warnings: int           # warnings overlapping a look-alike of this kind

    def to_dict(self) -> dict[str, Any]:
        return {"instances": self.instances, "touched": self.touched, "warnings": self.warnings}


@dataclass(frozen=True)
class RuleCounts:
    kind: str
    warnings: int
    planted: int            # overlapping a planted instance
    lookalike: int          # overlapping only look-alikes
    background: int         # overlapping nothing labelled

    @property
    def precision(self) -> float | None:
        return self.planted / self.warnings if self.warnings else None

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "warnings": self.warnings, "planted": self.planted, "lookalike": self.lookalike,
                "background": self.background, "precision": _round(self.precision)}


@dataclass(frozen=True)
class Evaluation:
    source: str
    events: int
    by_kind: Mapping[str, KindRecall]
    overall: KindRecall
    warnings: int
    duplicates: int
    planted_warnings: int
    lookalike_warnings: int
    background_warnings: int
    lookalikes: Mapping[str, LookalikeNoise]
    rules: Mapping[str, RuleCounts]
    missed: tuple[Instance, ...] = field(default=(), compare=False)
    by_variant: Mapping[str, KindRecall] = field(default_factory=dict)  # only when the truth marks variants

    @property
    def precision(self) -> float | None:
        return self.planted_warnings / self.warnings if self.warnings else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "truth": {"source": self.source, "events": self.events},
            "overlap": OVERLAP_RULE,
            "recall": {"overall": self.overall.to_dict(),
                       "by_kind": {k: v.to_dict() for k, v in self.by_kind.items()},
                       "by_variant": {k: v.to_dict() for k, v in self.by_variant.items()}},
            "warnings": {"total": self.warnings, "duplicates_ignored": self.duplicates,
                         "planted": self.planted_warnings, "lookalike": self.lookalike_warnings,
                         "background": self.background_warnings, "precision": _round(self.precision)},
            "lookalikes": {k: v.to_dict() for k, v in self.lookalikes.items()},
            "rules": {k: v.to_dict() for k, v in self.rules.items()},
            "missed": [{"kind": i.kind, "key": i.key, "alert_id": i.alert_id} for i in self.missed],
        }


class _Index:
    """txn id / loan id / account -> the instances holding it, so a warning is matched without a full scan."""

    def __init__(self, instances: Sequence[Instance]) -> None:
        self.by_txn: dict[str, list[int]] = {}
        self.by_loan: dict[str, list[int]] = {}
        self.by_account: dict[str, list[int]] = {}
        for number, instance in enumerate(instances):
            for table, values in ((self.by_txn, instance.txn_ids), (self.by_loan, instance.loan_ids),
                                  (self.by_account, instance.accounts)):
                for value in dict.fromkeys(values):
                    table.setdefault(value, []).append(number)

    def overlapping(self, warning: WarningRef) -> list[int]:
        """Instance numbers the warning overlaps, ascending."""
        hits: dict[int, bool] = {}
        for table, values in ((self.by_txn, warning.txn_ids), (self.by_loan, warning.loan_ids)):
            for value in values:
                for number in table.get(value, ()):
                    hits[number] = True
        shared = Counter(number for account in dict.fromkeys(warning.accounts)
                         for number in self.by_account.get(account, ()))
        for number, count in shared.items():
            if count >= MIN_SHARED_ACCOUNTS:
                hits[number] = True
        return sorted(hits)


def overlaps(warning: WarningRef, instance: Instance) -> bool:
    """The overlap definition of this module, for one pair (the index applies the same test in bulk)."""
    if set(warning.txn_ids) & set(instance.txn_ids) or set(warning.loan_ids) & set(instance.loan_ids):
        return True
    return len(set(warning.accounts) & set(instance.accounts)) >= MIN_SHARED_ACCOUNTS


def evaluate(warnings: Iterable[WarningRef], truth: Truth) -> Evaluation:
    unique: dict[str, WarningRef] = {}
    total_seen = 0
    for warning in warnings:
        total_seen += 1
        unique.setdefault(warning.warning_id, warning)
    planted_index = _Index(truth.planted)
    lookalike_index = _Index(truth.lookalikes)

    detected = [False] * len(truth.planted)
    detected_same = [False] * len(truth.planted)
    first_warning_ts: list[int | None] = [None] * len(truth.planted)
    touched = [False] * len(truth.lookalikes)
    lookalike_warnings_by_kind: Counter[str] = Counter()
    rule_rows: dict[str, list] = {}
    planted_warnings = lookalike_warnings = background_warnings = 0
    for warning in unique.values():
        row = rule_rows.setdefault(warning.rule_id, [warning.kind, 0, 0, 0, 0])
        row[1] += 1
        hits = planted_index.overlapping(warning)
        for number in hits:
            detected[number] = True
            if warning.event_ts is not None:
                known = first_warning_ts[number]
                first_warning_ts[number] = warning.event_ts if known is None else min(known, warning.event_ts)
            if truth.planted[number].kind == warning.kind:
                detected_same[number] = True
        if hits:
            planted_warnings += 1
            row[2] += 1
            continue
        lookalike_hits = lookalike_index.overlapping(warning)
        if lookalike_hits:
            lookalike_warnings += 1
            row[3] += 1
            for number in lookalike_hits:
                touched[number] = True
            for kind in dict.fromkeys(truth.lookalikes[n].kind for n in lookalike_hits):
                lookalike_warnings_by_kind[kind] += 1
        else:
            background_warnings += 1
            row[4] += 1

    by_kind: dict[str, KindRecall] = {}
    counts: dict[str, list[int]] = {}
    delays: dict[str, list[float]] = {}
    for number, instance in enumerate(truth.planted):
        c = counts.setdefault(instance.kind, [0, 0, 0])
        c[0] += 1
        c[1] += detected[number]
        c[2] += detected_same[number]
        warned = first_warning_ts[number]
        if warned is not None and instance.first_ts is not None:
            delays.setdefault(instance.kind, []).append(max(0, warned - instance.first_ts) / 1000)
    for kind, (n, d, same) in counts.items():
        by_kind[kind] = KindRecall(n, d, same, tuple(delays.get(kind, ())))
    overall = _recall_of(range(len(truth.planted)), truth, detected, detected_same, first_warning_ts)
    by_variant: dict[str, KindRecall] = {}
    if any(i.variant for i in truth.planted):
        variants = dict.fromkeys(i.variant or "plain" for i in truth.planted)
        for variant in variants:
            members = [n for n, i in enumerate(truth.planted) if (i.variant or "plain") == variant]
            by_variant[variant] = _recall_of(members, truth, detected, detected_same, first_warning_ts)

    lookalikes: dict[str, LookalikeNoise] = {}
    look_counts: dict[str, list[int]] = {}
    for number, instance in enumerate(truth.lookalikes):
        c = look_counts.setdefault(instance.kind, [0, 0])
        c[0] += 1
        c[1] += touched[number]
    for kind, (n, t) in look_counts.items():
        lookalikes[kind] = LookalikeNoise(n, t, lookalike_warnings_by_kind[kind])

    rules = {rule_id: RuleCounts(*row) for rule_id, row in sorted(rule_rows.items())}
    missed = tuple(i for number, i in enumerate(truth.planted) if not detected[number])
    return Evaluation(source=truth.source, events=truth.events, by_kind=by_kind, overall=overall,
                      warnings=len(unique), duplicates=total_seen - len(unique),
                      planted_warnings=planted_warnings, lookalike_warnings=lookalike_warnings,
                      background_warnings=background_warnings, lookalikes=lookalikes, rules=rules, missed=missed,
                      by_variant=by_variant)


def _recall_of(members: Iterable[int], truth: Truth, detected: list[bool], detected_same: list[bool],
               first_warning_ts: list[int | None]) -> KindRecall:
    members = list(members)
    delays = []
    for number in members:
        warned, start = first_warning_ts[number], truth.planted[number].first_ts
        if warned is not None and start is not None:
            delays.append(max(0, warned - start) / 1000)
    return KindRecall(len(members), sum(detected[n] for n in members), sum(detected_same[n] for n in members),
                      tuple(delays))


# Reading warnings ---------------------------------------------------------------------------------------

def warning_from_dict(data: Any, *, where: str = "<warning>") -> WarningRef:
    if not isinstance(data, Mapping):
        raise EvaluationError(f"{where}: expected a warning object (docs/architecture.md §5), got {type(data).__name__}")
    values: dict[str, Any] = {}
    for name in ("rule_id", "kind"):
        value = data.get(name)
        if not isinstance(value, str) or not value:
            raise EvaluationError(f"{where}: field {name!r} must be a non-empty string, got {value!r}")
        values[name] = value
    for name in ("accounts", "loan_ids", "txn_ids"):
        values[name] = string_list(data.get(name) or [], name, where, EvaluationError)
    warning_id = data.get("warning_id")
    if not isinstance(warning_id, str) or not warning_id:
        raise EvaluationError(f"{where}: field 'warning_id' must be a non-empty string, got {warning_id!r}")
    event_ts = optional_ts(data.get("event_ts"), "event_ts", where, EvaluationError)
    return WarningRef(warning_id=warning_id, event_ts=event_ts, **values)


def read_warnings(path: str | Path) -> list[WarningRef]:
    """A JSON-lines warnings file (.gz accepted); blank lines are skipped, anything else must be a warning."""
    path = Path(path)
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as handle:
            lines = handle.read().splitlines()
    except (OSError, EOFError) as exc:
        raise EvaluationError(f"cannot read warnings file {str(path)!r}: {getattr(exc, 'strerror', None) or exc}") \
            from None
    warnings = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            data = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise EvaluationError(f"{path}:{number}: not valid JSON ({exc})") from None
        warnings.append(warning_from_dict(data, where=f"{path}:{number}"))
    return warnings


# Rendering ----------------------------------------------------------------------------------------------

def render_table(result: Evaluation) -> str:
    lines = [f"truth: {result.source} ({result.events} events)", f"overlap: a warning {OVERLAP_RULE}", ""]
    lines.append(f"{'planted typology':<18} {'instances':>9} {'detected':>9} {'recall':>7} {'same kind':>10} "
                 f"{'recall':>7} {'median delay':>12} {'max delay':>10}")
    rows = list(result.by_kind.items()) + [("ALL", result.overall)] + [
        (f"ALL {variant}", r) for variant, r in result.by_variant.items()]
    for kind, r in rows:
        lines.append(f"{kind:<18} {r.instances:>9} {r.detected:>9} {format_percent(r.recall):>7} "
                     f"{r.detected_same_kind:>10} {format_percent(r.recall_same_kind):>7} "
                     f"{format_delay(r.median_delay_s):>12} {format_delay(r.max_delay_s):>10}")
    lines.append("")
    dup = f" ({result.duplicates} duplicate ids ignored)" if result.duplicates else ""
    lines.append(f"warnings: {result.warnings}{dup}; on planted {result.planted_warnings}, on look-alikes only "
                 f"{result.lookalike_warnings}, on background {result.background_warnings}; "
                 f"precision {format_percent(result.precision)}")
    if result.lookalikes:
        lines.append("")
        lines.append(f"{'look-alike':<20} {'instances':>9} {'touched':>8} {'warnings':>9}")
        for kind, n in result.lookalikes.items():
            lines.append(f"{kind:<20} {n.instances:>9} {n.touched:>8} {n.warnings:>9}")
    if result.rules:
        lines.append("")
        lines.append(f"{'rule':<28} {'kind':<16} {'warnings':>8} {'planted':>8} {'look-al.':>8} {'backgr.':>8} "
                     f"{'precision':>9}")
        for rule_id, r in result.rules.items():
            lines.append(f"{rule_id:<28} {r.kind:<16} {r.warnings:>8} {r.planted:>8} {r.lookalike:>8} "
                         f"{r.background:>8} {format_percent(r.precision):>9}")
    return "\n".join(lines)


def format_percent(value: float | None) -> str:
    """A share as a percentage with one decimal; '-' when there was nothing to measure (no instances)."""
    return "-" if value is None else f"{100 * value:.1f}%"


def format_delay(seconds: float | None) -> str:
    """A detection delay in the unit a reader takes in at a glance; '-' when nothing was detected."""
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
