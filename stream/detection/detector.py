"""The Detector: one event in, early warnings out. Pure: no I/O, no wall clock unless one is injected.

Per event: record it (graph, tracer, device index), then run every enabled rule whose kind can be completed by
this event type, and turn what they find into `EarlyWarning`s:

- `rule.allow.ignores(event)` skips the rule for the event; findings whose primary account (first of
  `accounts`) is allow-listed are dropped.
- `where` is evaluated per finding over `names_for(event, disbursement)`, where `disbursement` is the loan the
  finding is about (loan-traced kinds), so analysts can filter on the originating loan (`disbursement.product`).
  A `where` that fails on an event counts as not matching (and is counted in `stats()`).
- Warning ids (`make_warning_id(rule.id, rule.version, incident)`): a loan-traced finding is one incident per
  loan, so the incident is the loan id; any other finding is its subject plus the start of the cooldown-sized
  bucket of event time of the event that raised it (`U9000@1772409600000`). A replay gives the same id; a
  warning let through once the cooldown has passed always lands in a later bucket, so it gets a new id instead of
  being dropped as a duplicate by the sinks. With no cooldown, the exact first evidence time is used: repeats of
  the same pattern share an id and the sinks keep one.
- Cooldown: at most one warning per rule and cooldown key (`loan`: the finding's loan, `account`: its primary
  account, `subject`: its subject) per `rule.cooldown.ms` of event time.
- `detected_at` is what the caller passes (the worker: the Kafka timestamp of the completing record), else the
  injected clock, else the event's own time, so replays are byte-for-byte deterministic.
"""

from __future__ import annotations

import gc
import heapq
from collections import Counter
from dataclasses import dataclass
from typing import Callable, Mapping

from ..errors import EventError, RuleError
from ..events import TOO_OLD as TOO_OLD_REASON
from ..events import Disbursement, Event
from ..timefmt import format_ts
from ..rules.model import AllowList, Rule, RuleSet
from ..rules.names import names_for
from ..warning import (MAX_SUMMARY_CHARS, TRUNCATED_KEY, EarlyWarning, capped, capped_evidence,
                       make_warning_id)
from .finding import Finding
from .graph import DEFAULT_LATENESS_MS, DEFAULT_WINDOW_MS, DUPLICATE, TOO_OLD
from .kinds import KINDS, Kind
from .state import DetectionState, SearchLimits
from .tracer import TracerOptions


# Events between two freezes of long-lived objects (see `freeze_long_lived_objects`); 0 (default) never freezes:
# freezing is process-wide, so the entry point (worker, replay) decides.
DEFAULT_FREEZE_GC_EVERY = 0


@dataclass(frozen=True)
class _Plan:
    """The rule set compiled for dispatch: per event type, the (rule, kind) pairs to run, in rule-set order."""

    rules: RuleSet
    by_type: Mapping[str, tuple[tuple[Rule, Kind, AllowList | None], ...]]


def _compile(rules: RuleSet) -> _Plan:
    by_type: dict[str, list[tuple[Rule, Kind, AllowList | None]]] = {"disbursement": [], "transfer": []}
    for rule in rules.rules:
        kind = KINDS.get(rule.kind)
        if kind is None:
            raise RuleError(f"unknown kind {rule.kind!r}; known kinds: {', '.join(sorted(KINDS))}",
                            file=rule.source.file if rule.source else None,
                            line=rule.source.line if rule.source else None, rule_id=rule.id)
        if not rule.enabled:
            continue
        for event_type in sorted(kind.triggers):
            by_type.setdefault(event_type, []).append((rule, kind, rule.allow if rule.allow else None))
    return _Plan(rules=rules, by_type={name: tuple(pairs) for name, pairs in by_type.items()})


class Detector:
    def __init__(self, rules: RuleSet, *, window_ms: int = DEFAULT_WINDOW_MS,
                 lateness_ms: int = DEFAULT_LATENESS_MS, clock: Callable[[], int] | None = None,
                 tracer: TracerOptions | None = None, limits: SearchLimits | None = None,
                 freeze_gc_every: int = DEFAULT_FREEZE_GC_EVERY) -> None:
        self._plan = _compile(rules)
        self._freeze_gc_every = freeze_gc_every
        self._until_freeze = freeze_gc_every
        self._clock = clock
        self.state = DetectionState(window_ms=window_ms, lateness_ms=lateness_ms, tracer=tracer, limits=limits)
        self._cooldowns: dict[tuple[str, str], int] = {}        # (rule id, key) -> event ts of the last warning
        self._cooldown_expiry: list[tuple[int, str, str, int]] = []  # (expires at, rule id, key, emitted at)
        self.warnings_by_rule: Counter[str] = Counter()
        self.suppressed_by_rule: Counter[str] = Counter()
        self.where_errors_by_rule: Counter[str] = Counter()

    # -- public surface ------------------------------------------------------------------------------------
    @property
    def rules(self) -> RuleSet:
        return self._plan.rules

    @property
    def watermark(self) -> int | None:
        return self.state.watermark

    def export_state(self) -> tuple:
        """Everything this detector learnt from events (not the rules): what a snapshot stores."""
        return (self.state, self._cooldowns, self._cooldown_expiry)

    def import_state(self, exported: tuple) -> None:
        """Continue from an exported state; the rules stay this detector's own."""
        self.state, self._cooldowns, self._cooldown_expiry = exported

    def replace_rules(self, rules: RuleSet) -> None:
        """Swap in a new rule set; graph, tracer and cooldowns are kept. Atomic: compiled first, then one
        assignment, so an event is checked against either the old or the new set, never a mix."""
        self._plan = _compile(rules)

    def process(self, event: Event, detected_at: int | None = None) -> list[EarlyWarning]:
        """The warnings this event completes; `detected_at`, when given, is their detection time (the worker
        passes the Kafka timestamp of the record, so a replay of the log re-emits byte-identical warnings).

        An event older than the window is refused with `EventError(too_old)`: it can no longer be judged, and
        the caller dead-letters it rather than drop it in silence. A duplicate event id (at-least-once delivery) is recorded once and raises nothing."""
        verdict = self.state.apply(event)
        if verdict == TOO_OLD:
            cutoff = self.state.graph.cutoff
            raise EventError(TOO_OLD_REASON, f"event time {format_ts(event.ts)} is older than the window, which "
                                             f"starts at {format_ts(cutoff) if cutoff is not None else '?'}",
                             event_id=event.event_id)
        if verdict == DUPLICATE:
            return []
        if self._freeze_gc_every:
            self._until_freeze -= 1
            if self._until_freeze <= 0:
                self._until_freeze = self._freeze_gc_every
                freeze_long_lived_objects()
        self._expire_cooldowns()
        plan = self._plan
        warnings: list[EarlyWarning] = []
        state = self.state
        for rule, kind, allow in plan.by_type.get(event.type, ()):
            if allow is not None and allow.ignores(event):
                continue
            for finding in kind.detect(rule, event, state):
                warning = self._admit(rule, event, finding, detected_at)
                if warning is not None:
                    warnings.append(warning)
        return warnings

    def stats(self) -> dict[str, object]:
        graph = self.state.graph.stats()
        tracer = self.state.tracer
        return {
            "events": graph.events, "late": graph.late, "too_old": graph.too_old, "duplicates": graph.duplicates,
            "nodes": graph.nodes, "edges": graph.edges, "evicted_edges": graph.evicted_edges,
            "lots": tracer.lot_count, "loans": tracer.loan_count, "devices": len(self.state.devices),
            "tracer": {name: getattr(tracer.counters, name) for name in tracer.counters.__slots__},
            "watermark": self.watermark,
            "warnings": dict(sorted(self.warnings_by_rule.items())),
            "suppressed": dict(sorted(self.suppressed_by_rule.items())),
            "where_errors": dict(sorted(self._where_errors().items())),
        }

    def _where_errors(self) -> Counter[str]:
        """Failures this detector caught, plus those a compiled expression counted itself (it never raises)."""
        errors = Counter(self.where_errors_by_rule)
        for rule in self.rules.rules:
            failures = getattr(getattr(rule.where, "stats", None), "failures", 0)
            if failures:
                errors[rule.id] += failures
        return errors

    # -- findings -> warnings ------------------------------------------------------------------------------
    def _admit(self, rule: Rule, event: Event, finding: Finding, detected_at: int | None) -> EarlyWarning | None:
        if finding.accounts and finding.accounts[0] in rule.allow.accounts:
            return None
        if rule.where is not None and not self._where(rule, event, finding):
            return None
        cooldown = rule.cooldown
        if cooldown.ms > 0:
            key = self._cooldown_key(rule, finding)
            last = self._cooldowns.get((rule.id, key))
            if last is not None and abs(event.ts - last) < cooldown.ms:
                self.suppressed_by_rule[rule.id] += 1
                return None
            self._cooldowns[(rule.id, key)] = event.ts
            heapq.heappush(self._cooldown_expiry, (event.ts + cooldown.ms, rule.id, key, event.ts))
        self.warnings_by_rule[rule.id] += 1
        cut: dict[str, int] = {}          # what the size caps left out (see stream.warning)
        accounts = capped(finding.accounts, "accounts", cut)
        loan_ids = capped(finding.loan_ids, "loan_ids", cut)
        txn_ids = capped(finding.txn_ids, "txn_ids", cut)
        evidence = capped_evidence(finding.evidence, cut)
        if cut:
            evidence[TRUNCATED_KEY] = cut
        return EarlyWarning(
            warning_id=make_warning_id(rule.id, rule.version, incident_key(rule, finding, event.ts)),
            rule_id=rule.id, rule_version=rule.version, kind=rule.kind, severity=rule.severity,
            score=finding.score, subject=finding.subject, accounts=accounts, loan_ids=loan_ids,
            txn_ids=txn_ids, amount=finding.amount, currency=self._currency(event, finding),
            first_ts=finding.first_ts, event_ts=event.ts,
            detected_at=detected_at if detected_at is not None else (
                self._clock() if self._clock is not None else event.ts),
            summary=finding.summary[:MAX_SUMMARY_CHARS], evidence=evidence, notify=rule.notify,
        )

    def _where(self, rule: Rule, event: Event, finding: Finding) -> bool:
        disbursement = self._disbursement_of(finding)
        try:
            return rule.matches(names_for(event, disbursement))
        except Exception:  # noqa: BLE001 - an analyst's expression must not stop the stream
            self.where_errors_by_rule[rule.id] += 1
            return False

    def _disbursement_of(self, finding: Finding) -> Disbursement | None:
        if finding.loan_subject is None:
            return None
        record = self.state.tracer.loan(finding.loan_subject)
        return record.disbursement if record is not None else None

    def _currency(self, event: Event, finding: Finding) -> str:
        disbursement = self._disbursement_of(finding)
        return disbursement.currency if disbursement is not None else event.currency

    @staticmethod
    def _cooldown_key(rule: Rule, finding: Finding) -> str:
        subject = rule.cooldown.subject
        if subject == "loan":
            return finding.loan_subject or (finding.loan_ids[0] if finding.loan_ids else finding.subject)
        if subject == "account":
            return finding.accounts[0] if finding.accounts else finding.subject
        return finding.subject

    def _expire_cooldowns(self) -> None:
        """Forget cooldowns that ended before the window: no event still accepted could fall inside them."""
        cutoff = self.state.graph.cutoff
        heap = self._cooldown_expiry
        while heap and cutoff is not None and heap[0][0] < cutoff:
            _, rule_id, key, emitted_at = heapq.heappop(heap)
            if self._cooldowns.get((rule_id, key)) == emitted_at:
                del self._cooldowns[(rule_id, key)]


def freeze_long_lived_objects() -> None:
    """Collect the young generations' cyclic garbage, then move every surviving object out of the cyclic
    collector's sight.

    Without this, Python's collector periodically rescans the whole window (millions of dicts and tuples) and the
    per-event cost grows with the graph. Detection state holds no reference cycles, so frozen objects are still
    freed by reference counting when their edge or lot expires; freezing only stops the pointless rescans. Only
    the young generations are collected first: a full collection would itself rescan everything not yet frozen.
    """
    gc.collect(1)
    gc.freeze()


def incident_key(rule: Rule, finding: Finding, event_ts: int) -> str:
    """What a warning id identifies; see the module docstring."""
    if finding.loan_subject is not None:
        return finding.subject
    bucket = rule.cooldown.ms
    start = event_ts - event_ts % bucket if bucket > 0 else finding.first_ts
    return f"{finding.subject}@{start}"

