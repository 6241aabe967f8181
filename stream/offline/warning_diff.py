"""What changes between two sets of warnings, by rule: which warnings the second adds, which it drops, and which
it changes (the same warning, different content), with the fields that differ.

A warning is identified by its id, a hash of what it is about: the rule, the rule's version and the incident
(the loan, or the subject and a cooldown-sized bucket of event time; stream/detection/detector.py). Because
the version is part of it, every warning of a rule changes id when the rule is edited, and a comparison of
two rule packs would show each of them dropped and added again. So warnings left unmatched by id are matched
a second time by rule and incident, where the incident can be recovered: it is accepted only when hashing it
with the warning's own rule and version gives back the warning's id, so a pair is never a guess. The loan of
a loan-traced warning and the exact time of a rule without cooldown are recovered from the warning alone;
a bucket needs the rule's cooldown, which only the rule pack knows (`old_cooldowns`, `new_cooldowns`).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from ..model.money import format_minor
from ..model.timefmt import format_ts
from ..model.warning import EarlyWarning, make_warning_id
from .evidence_view import printable

SHOWN_VALUE_CHARS = 40       # longer values are named, not shown, in the text report
SHOWN_ITEMS = 3              # list items shown of what a list gained or lost
IDENTITY = frozenset({"warning_id", "rule_version"})   # what a new rule version changes in every warning
ByRule = dict[str, list[EarlyWarning]]
Pair = tuple[EarlyWarning, EarlyWarning]


@dataclass(frozen=True, slots=True)
class FieldChange:
    name: str                # a §5 field, or evidence.<key>
    old: Any
    new: Any

    def render(self) -> str:
        if isinstance(self.old, list) and isinstance(self.new, list) and \
                all(isinstance(item, str) for item in self.old + self.new):
            gained = [item for item in self.new if item not in self.old]
            lost = [item for item in self.old if item not in self.new]
            if gained or lost:
                return f"{self.name} {_items('+', gained)}{' ' if gained and lost else ''}{_items('-', lost)}"
            return f"{self.name} reordered"
        old, new = _scalar(self.old), _scalar(self.new)
        if old is None or new is None:
            return self.name
        return f"{self.name} {old} -> {new}"


@dataclass(frozen=True, slots=True)
class Changed:
    old: EarlyWarning
    new: EarlyWarning
    fields: tuple[FieldChange, ...]


@dataclass(frozen=True)
class RuleDiff:
    rule_id: str
    added: tuple[EarlyWarning, ...] = ()
    dropped: tuple[EarlyWarning, ...] = ()
    changed: tuple[Changed, ...] = ()
    same: int = 0
    same_new_version: int = 0                # of `same`: matched by incident, only the id and version differ
    versions: tuple[tuple[str, ...], tuple[str, ...]] = ((), ())   # the rule's versions in old and new

    @property
    def empty(self) -> bool:
        return not (self.added or self.dropped or self.changed)


@dataclass(frozen=True)
class WarningsDiff:
    rules: tuple[RuleDiff, ...]              # every rule with a warning on either side, by rule id
    old_count: int                           # distinct warning ids on each side
    new_count: int
    old_repeated: int = 0                    # lines whose id an earlier line already had (the last copy is used)
    new_repeated: int = 0
    notes: tuple[str, ...] = field(default=())

    @property
    def empty(self) -> bool:
        return all(rule.empty for rule in self.rules)

    def totals(self) -> dict[str, int]:
        return {"added": sum(len(r.added) for r in self.rules), "dropped": sum(len(r.dropped) for r in self.rules),
                "changed": sum(len(r.changed) for r in self.rules), "same": sum(r.same for r in self.rules)}

    def render(self, old_name: str, new_name: str) -> str:
        lines = []
        for rule in self.rules:
            if rule.empty:
                continue
            counts = [f"{len(rule.added)} added" if rule.added else "",
                      f"{len(rule.dropped)} dropped" if rule.dropped else "",
                      f"{len(rule.changed)} changed" if rule.changed else "", f"{rule.same} the same"]
            if rule.same_new_version:
                counts[-1] += (" (under the rule's new version)" if rule.same_new_version == rule.same else
                               f" ({rule.same_new_version} of them under the rule's new version)")
            old_versions, new_versions = (", ".join(v) for v in rule.versions)
            version = f" (version {old_versions} -> {new_versions})" if old_versions != new_versions and \
                old_versions and new_versions else ""
            lines.append(f"{printable(rule.rule_id)}{printable(version)}: {', '.join(part for part in counts if part)}")
            lines += [f"  + {_line(w)}" for w in rule.added]
            lines += [f"  - {_line(w)}" for w in rule.dropped]
            lines += [f"  ~ {_changed_line(change)}" for change in rule.changed]
        for repeated, name in ((self.old_repeated, old_name), (self.new_repeated, new_name)):
            if repeated:
                lines.append(f"note: {name} repeats {repeated} warning id(s) (a rule without cooldown raising one "
                             f"incident again); the last copy of each is compared, as the store keeps it")
        lines += [f"note: {note}" for note in self.notes]
        total = self.totals()
        if self.empty:
            lines.append(f"no differences: the same {self.old_count} warnings in {old_name} and {new_name}")
        else:
            lines.append(f"total: {new_name} adds {total['added']}, drops {total['dropped']}, changes "
                         f"{total['changed']} of the {self.old_count} warnings of {old_name} ({total['same']} the "
                         f"same; {self.new_count} in {new_name})")
        return "\n".join(lines)

    def to_dict(self, old_name: str, new_name: str) -> dict[str, Any]:
        """The report for machines: full warnings for what was added or dropped, old and new values for changes."""
        return {
            "old": {"source": old_name, "warnings": self.old_count, "repeated_ids": self.old_repeated},
            "new": {"source": new_name, "warnings": self.new_count, "repeated_ids": self.new_repeated},
            "differ": not self.empty, "total": self.totals(), "notes": list(self.notes),
            "rules": {rule.rule_id: {
                "added": [w.to_dict() for w in rule.added], "dropped": [w.to_dict() for w in rule.dropped],
                "changed": [{"old_id": c.old.warning_id, "new_id": c.new.warning_id, "subject": c.new.subject,
                             "fields": {f.name: {"old": f.old, "new": f.new} for f in c.fields}}
                            for c in rule.changed],
                "same": rule.same, "same_new_version": rule.same_new_version,
                "versions": {"old": list(rule.versions[0]), "new": list(rule.versions[1])}} for rule in self.rules},
        }


def diff_warnings(old: Iterable[EarlyWarning], new: Iterable[EarlyWarning], *,
                  old_cooldowns: Mapping[str, int] | None = None,
                  new_cooldowns: Mapping[str, int] | None = None) -> WarningsDiff:
    """Compare two runs' warnings. The cooldowns (rule id -> ms) are those of each side's rule pack, when known."""
    old_by_id, old_repeated = _by_id(old)
    new_by_id, new_repeated = _by_id(new)
    pairs = [(old_by_id[warning_id], new_by_id[warning_id]) for warning_id in old_by_id.keys() & new_by_id.keys()]
    old_left = [w for warning_id, w in old_by_id.items() if warning_id not in new_by_id]
    new_left = [w for warning_id, w in new_by_id.items() if warning_id not in old_by_id]
    by_incident, dropped, added = _pair_by_incident(old_left, new_left, old_cooldowns or {}, new_cooldowns or {})
    same: dict[str, int] = defaultdict(int)
    same_new_version: dict[str, int] = defaultdict(int)
    changed: dict[str, list[Changed]] = defaultdict(list)
    for before, after in pairs + by_incident:
        fields = field_changes(before, after)
        if all(change.name in IDENTITY for change in fields):
            same[after.rule_id] += 1
            same_new_version[after.rule_id] += bool(fields)
        else:
            changed[after.rule_id].append(Changed(before, after, fields))
    rule_ids = sorted({w.rule_id for w in old_by_id.values()} | {w.rule_id for w in new_by_id.values()})
    rules = tuple(RuleDiff(rule_id, added=_ordered(added[rule_id]), dropped=_ordered(dropped[rule_id]),
                           changed=tuple(sorted(changed[rule_id], key=lambda c: _order(c.new))),
                           same=same[rule_id], same_new_version=same_new_version[rule_id],
                           versions=(_versions(old_by_id.values(), rule_id), _versions(new_by_id.values(), rule_id)))
                  for rule_id in rule_ids)
    return WarningsDiff(rules=rules, old_count=len(old_by_id), new_count=len(new_by_id), old_repeated=old_repeated,
                        new_repeated=new_repeated, notes=_version_notes(dropped, added))


def _pair_by_incident(old_left: list[EarlyWarning], new_left: list[EarlyWarning], old_cooldowns: Mapping[str, int],
                      new_cooldowns: Mapping[str, int]) -> tuple[list[Pair], ByRule, ByRule]:
    """The warnings no id matched, paired by rule and proven incident; the rest, by rule, dropped and added."""
    by_incident: dict[tuple[str, str], EarlyWarning] = {}
    for warning in old_left:
        incident = incident_of(warning, old_cooldowns.get(warning.rule_id))
        if incident is not None:
            by_incident.setdefault((warning.rule_id, incident), warning)
    pairs: list[Pair] = []
    added: ByRule = defaultdict(list)
    for warning in new_left:
        incident = incident_of(warning, new_cooldowns.get(warning.rule_id))
        before = by_incident.pop((warning.rule_id, incident), None) if incident is not None else None
        if before is None:
            added[warning.rule_id].append(warning)
        else:
            pairs.append((before, warning))
    paired = {before.warning_id for before, _ in pairs}
    dropped: ByRule = defaultdict(list)
    for warning in old_left:
        if warning.warning_id not in paired:
            dropped[warning.rule_id].append(warning)
    return pairs, dropped, added


def incident_of(warning: EarlyWarning, cooldown_ms: int | None = None) -> str | None:
    """The incident the warning's id hashes, when it can be recovered and proved: the loan, the exact first
    evidence time (no cooldown), or the cooldown bucket of its event time (with the rule's cooldown)."""
    candidates = [warning.subject, f"{warning.subject}@{warning.first_ts}"]
    if cooldown_ms:
        candidates.append(f"{warning.subject}@{warning.event_ts - warning.event_ts % cooldown_ms}")
    for incident in candidates:
        if make_warning_id(warning.rule_id, warning.rule_version, incident) == warning.warning_id:
            return incident
    return None


def field_changes(old: EarlyWarning, new: EarlyWarning) -> tuple[FieldChange, ...]:
    """The §5 fields that differ, in §5 order; a differing evidence is told key by key."""
    before, after = old.to_dict(), new.to_dict()
    changes = []
    for name in before:
        if name == "evidence":
            old_evidence, new_evidence = before[name], after[name]
            changes += [FieldChange(f"evidence.{key}", old_evidence.get(key), new_evidence.get(key))
                        for key in sorted(old_evidence.keys() | new_evidence.keys())
                        if old_evidence.get(key) != new_evidence.get(key)]
        elif before[name] != after[name]:
            changes.append(FieldChange(name, before[name], after[name]))
    return tuple(changes)


def _by_id(warnings: Iterable[EarlyWarning]) -> tuple[dict[str, EarlyWarning], int]:
    by_id: dict[str, EarlyWarning] = {}
    repeated = 0
    for warning in warnings:
        if warning.warning_id in by_id:
            repeated += 1
            del by_id[warning.warning_id]          # the last copy, in its own place in the order
        by_id[warning.warning_id] = warning
    return by_id, repeated


def _version_notes(dropped: ByRule, added: ByRule) -> tuple[str, ...]:
    """Rules whose version changed and whose warnings could not all be matched by incident: say why they show
    as dropped and added, and what would match them."""
    notes = []
    for rule_id in sorted(dropped.keys() & added.keys()):
        if not dropped[rule_id] or not added[rule_id]:
            continue
        old_versions = {w.rule_version for w in dropped[rule_id]}
        new_versions = {w.rule_version for w in added[rule_id]}
        if old_versions.isdisjoint(new_versions):
            notes.append(f"rule {printable(rule_id)} has version {', '.join(sorted(old_versions))} before and "
                         f"{', '.join(sorted(new_versions))} after; a warning's id hashes its rule's version, and "
                         f"warnings of a rule with a cooldown can be matched across versions only with the rule "
                         f"packs (`fundflow rules diff OLD NEW --replay LEDGER`), so "
                         f"{len(dropped[rule_id])} dropped and {len(added[rule_id])} added may be the same incidents")
    return tuple(notes)


def _versions(warnings: Iterable[EarlyWarning], rule_id: str) -> tuple[str, ...]:
    return tuple(sorted({w.rule_version for w in warnings if w.rule_id == rule_id}))


def _order(warning: EarlyWarning) -> tuple[int, str]:
    return warning.event_ts, warning.warning_id


def _ordered(warnings: Sequence[EarlyWarning]) -> tuple[EarlyWarning, ...]:
    return tuple(sorted(warnings, key=_order))


def _line(warning: EarlyWarning) -> str:
    return printable(f"{warning.warning_id}  {warning.subject}  {format_minor(warning.amount)} {warning.currency}  "
                     f"{format_ts(warning.event_ts)}  {warning.summary}")


def _changed_line(change: Changed) -> str:
    ids = change.new.warning_id if change.old.warning_id == change.new.warning_id else \
        f"{change.old.warning_id} -> {change.new.warning_id}"
    shown = [f.render() for f in change.fields if f.name not in IDENTITY]      # the rule's line has the version
    return printable(f"{ids}  {change.new.subject}  {'; '.join(shown)}")


def _scalar(value: Any) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "(none)"
    if isinstance(value, (int, float, str)) and len(str(value)) <= SHOWN_VALUE_CHARS:
        return str(value)
    return None


def _items(sign: str, items: list[str]) -> str:
    if not items:
        return ""
    shown = ", ".join(f"{sign}{item}" for item in items[:SHOWN_ITEMS])
    return shown + (f" (and {len(items) - SHOWN_ITEMS} more)" if len(items) > SHOWN_ITEMS else "")
