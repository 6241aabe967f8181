"""Compiled rules: what the loader produces from YAML and the detector consumes.

Everything here is already validated and normalized (durations in ms, list references resolved), so
detection code never re-checks a rule.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from ..model.events import Event, Transfer


@dataclass(frozen=True, slots=True)
class SourceLocation:
    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True, slots=True)
class AllowList:
    """Known-good parties a rule must not warn about: accounts, merchants (transfer `dst` of merchant
    payments) and directed account pairs (src, dst)."""

    accounts: frozenset[str] = frozenset()
    merchants: frozenset[str] = frozenset()
    pairs: frozenset[tuple[str, str]] = frozenset()

    def __bool__(self) -> bool:
        return bool(self.accounts or self.merchants or self.pairs)

    def ignores(self, event: Event) -> bool:
        """True when the event only touches allow-listed parties and must not trigger the rule."""
        if isinstance(event, Transfer):
            return (event.src in self.accounts or event.dst in self.accounts or event.dst in self.merchants
                    or (event.src, event.dst) in self.pairs)
        return event.account in self.accounts


@dataclass(frozen=True, slots=True)
class Cooldown:
    """At most one warning per `subject` key per `ms` of event time.

    `subject` names what is deduplicated: `loan`, `account` or `subject` (the finding's own subject)."""

    subject: str = "subject"
    ms: int = 86_400_000


# A compiled `where` expression: names (event / disbursement / transfer / features) -> bool.
Predicate = Callable[[Mapping[str, Any]], bool]


@dataclass(frozen=True)
class Rule:
    id: str
    kind: str
    desc: str
    params: Mapping[str, Any]
    severity: str
    version: str                                   # hash of the rule's normalized text (after overrides)
    where: Predicate | None = None
    where_text: str | None = None
    cooldown: Cooldown = field(default_factory=Cooldown)
    notify: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    enabled: bool = True
    allow: AllowList = field(default_factory=AllowList)
    false_positives: tuple[str, ...] = ()
    # Rules whose warning about the same incident (the same cooldown key, within that rule's cooldown) makes this
    # one stay quiet: a looser rule of a typology does not repeat what its stricter sibling already raised. It
    # decides whether a warning is raised, not what it says, so it is outside `version` (like `enabled`) and in
    # the rule set's version.
    suppressed_by: tuple[str, ...] = ()
    source: SourceLocation | None = None
    # The rule as its version hashes it: canonical JSON {"content": ..., "rule": id, "where_source": ...}, where
    # sha256 of `content` (canonical JSON, sorted keys) gives `version`. Kept for the evidence chain
    # (stream/evidence/ruletext.py), which stores it beside every warning and rebuilds the rule from it.
    canonical_text: str = ""

    def matches(self, names: Mapping[str, Any]) -> bool:
        """The rule's `where` filter over the given names; no filter matches everything."""
        return True if self.where is None else bool(self.where(names))

    def param(self, name: str) -> Any:
        return self.params[name]


@dataclass(frozen=True)
class RuleSet:
    rules: tuple[Rule, ...]
    version: str = ""                              # hash over every rule version: what is running

    @property
    def enabled(self) -> tuple[Rule, ...]:
        return tuple(rule for rule in self.rules if rule.enabled)

    def by_id(self, rule_id: str) -> Rule:
        for rule in self.rules:
            if rule.id == rule_id:
                return rule
        raise KeyError(rule_id)

    def __len__(self) -> int:
        return len(self.rules)
