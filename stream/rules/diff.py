"""What changes between two rule sets, said the way a reviewer asks it: which rules come and go, and for each
changed rule whether it now fires more (loosened) or less (tightened), louder or quieter, on or off.

Both sides are compiled `RuleSet`s (after lists and overrides), so a change made through a shared list or an
override file shows up just like an edit of the rule itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from ..model.warning import SEVERITY_RANK
from .model import Rule, RuleSet


@dataclass(frozen=True)
class Change:
    field: str                 # "params.min_ratio", "severity", "enabled", "where", ...
    old: Any
    new: Any
    direction: str | None      # loosened / tightened / up / down / enabled / disabled / quieter / louder / None

    def render(self) -> str:
        note = f" ({self.direction})" if self.direction else ""
        return f"{self.field}: {_show(self.old)} -> {_show(self.new)}{note}"


@dataclass(frozen=True)
class RuleSetDiff:
    added: tuple[Rule, ...]
    removed: tuple[Rule, ...]
    changed: tuple[tuple[Rule, tuple[Change, ...]], ...]     # (new rule, its changes)
    unchanged: int

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed)

    def render(self) -> str:
        lines = []
        for rule in self.added:
            state = "" if rule.enabled else ", disabled"
            lines.append(f"+ {rule.id} ({rule.kind}, {rule.severity}{state}): added")
        for rule in self.removed:
            lines.append(f"- {rule.id} ({rule.kind}): removed")
        for rule, changes in self.changed:
            lines.append(f"~ {rule.id} ({rule.kind}):")
            lines += [f"    {change.render()}" for change in changes]
        lines.append(f"{len(self.added)} added, {len(self.removed)} removed, {len(self.changed)} changed, "
                     f"{self.unchanged} unchanged")
        return "\n".join(lines)


def diff_rulesets(old: RuleSet, new: RuleSet, kinds: Mapping[str, Any]) -> RuleSetDiff:
    old_by_id = {rule.id: rule for rule in old.rules}
    new_by_id = {rule.id: rule for rule in new.rules}
    added = tuple(rule for rule in new.rules if rule.id not in old_by_id)
    removed = tuple(rule for rule in old.rules if rule.id not in new_by_id)
    changed = []
    unchanged = 0
    for rule in new.rules:
        before = old_by_id.get(rule.id)
        if before is None:
            continue
        changes = rule_changes(before, rule, kinds)
        if changes:
            changed.append((rule, changes))
        else:
            unchanged += 1
    return RuleSetDiff(added, removed, tuple(changed), unchanged)


def rule_changes(old: Rule, new: Rule, kinds: Mapping[str, Any]) -> tuple[Change, ...]:
    changes: list[Change] = []
    if old.enabled != new.enabled:
        changes.append(Change("enabled", old.enabled, new.enabled, "enabled" if new.enabled else "disabled"))
    if old.kind != new.kind:
        changes.append(Change("kind", old.kind, new.kind, None))
    else:
        kind = kinds.get(new.kind)
        specs = kind.params if kind is not None else ()
        for spec in specs:
            before, after = old.params.get(spec.name), new.params.get(spec.name)
            if before == after:
                continue
            changes.append(Change(f"params.{spec.name}", spec.show(before), spec.show(after),
                                  _param_direction(spec.looser, before, after)))
    if old.severity != new.severity:
        up = SEVERITY_RANK.get(new.severity, 0) > SEVERITY_RANK.get(old.severity, 0)
        changes.append(Change("severity", old.severity, new.severity, "up" if up else "down"))
    if (old.where.canonical if old.where else None) != (new.where.canonical if new.where else None):
        direction = "filter removed: louder" if new.where is None else "filter added: quieter" \
            if old.where is None else None
        changes.append(Change("where", old.where_text, new.where_text, direction))
    if old.cooldown != new.cooldown:
        direction = None
        if old.cooldown.subject == new.cooldown.subject:
            direction = "louder" if new.cooldown.ms < old.cooldown.ms else "quieter"
        changes.append(Change("cooldown", _cooldown(old), _cooldown(new), direction))
    for part in ("accounts", "merchants", "pairs"):
        before, after = getattr(old.allow, part), getattr(new.allow, part)
        if before != after:
            gained, lost = sorted(after - before), sorted(before - after)
            detail = ", ".join(filter(None, [f"+{_show(gained)}" if gained else "", f"-{_show(lost)}" if lost else ""]))
            direction = "quieter" if gained and not lost else "louder" if lost and not gained else None
            changes.append(Change(f"allow.{part}", f"{len(before)} entries", f"{len(after)} entries ({detail})",
                                  direction))
    if old.notify != new.notify:
        changes.append(Change("notify", list(old.notify), list(new.notify), None))
    if old.version != new.version and not any(c.field != "enabled" for c in changes):
        changes.append(Change("version", old.version, new.version, None))
    return tuple(changes)


def _param_direction(looser: str | None, before: Any, after: Any) -> str | None:
    """loosened = the rule now fires more often; sets (channels, categories) say what was added or removed."""
    if isinstance(before, frozenset) and isinstance(after, frozenset):
        gained, lost = sorted(after - before), sorted(before - after)
        return ", ".join(filter(None, [f"added {_show(gained)}" if gained else "",
                                       f"removed {_show(lost)}" if lost else ""]))
    if looser not in ("lower", "higher") or isinstance(before, bool) or isinstance(after, bool):
        return None
    try:
        went_lower = after < before
    except TypeError:
        return None
    return "loosened" if went_lower == (looser == "lower") else "tightened"


def _cooldown(rule: Rule) -> str:
    from ..model.timefmt import format_duration_ms
    return f"{rule.cooldown.subject} for {format_duration_ms(rule.cooldown.ms)}"


def _show(value: Any) -> str:
    if isinstance(value, (list, tuple, set, frozenset)):
        return "[" + ", ".join(_show(v) for v in (sorted(value) if isinstance(value, (set, frozenset)) else value)) + "]"
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
