"""What one rule's `where` can read, and the type of every field, so the loader refuses what would match nothing.

The fields and their types come from the event dataclasses (`names.view_fields`), never from a list kept here.
The rule's kind narrows them: a kind that runs on disbursements only never sees a transfer, and one that runs on
transfers sees the loan the money came from only when it reports that loan (`Kind.reports_loan`). For such a
rule `transfer` (or `disbursement`) is always None, so a filter reading it can never match; the loader says so.
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from typing import Any, Iterable, Mapping

from ..model.events import Disbursement, Transfer
from .names import view_fields

ROOTS = ("event", "disbursement", "transfer", "finding")

# The types of values a where compares, in the words an error message uses.
TEXT, NUMBER, BOOLEAN, UNKNOWN = "text", "number", "boolean", "unknown"

_EVENT_CLASSES = {"disbursement": Disbursement, "transfer": Transfer}


@dataclass(frozen=True)
class Root:
    """One name of the expression: its fields (name -> TEXT / NUMBER / BOOLEAN / UNKNOWN), or None with the
    reason when this root is always None for the rule."""

    name: str
    fields: Mapping[str, str] | None
    why_none: str = ""


@dataclass(frozen=True)
class WhereSchema:
    what: str                               # "a fan_in rule": who reads, for messages
    roots: Mapping[str, Root]

    @property
    def readable(self) -> tuple[str, ...]:
        """The roots that can hold an event for this rule, in ROOTS order."""
        return tuple(name for name in ROOTS if self.roots[name].fields is not None)

    def dotted(self) -> list[str]:
        """Every `root.field` this rule can read (for did-you-mean)."""
        return [f"{root}.{name}" for root in self.readable for name in sorted(self.roots[root].fields or {})]


def category(hint: Any) -> str:
    """A field's type hint -> the kind of value a where compares (an optional field is its value's kind)."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        present = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        return category(present[0]) if len(present) == 1 else UNKNOWN
    if hint is bool:
        return BOOLEAN
    if hint in (int, float, Decimal):
        return NUMBER
    if hint is str:
        return TEXT
    return UNKNOWN


def _fields(event_types: Iterable[str]) -> dict[str, str]:
    """The fields of any of these event types; one typed differently in two of them is UNKNOWN."""
    merged: dict[str, str] = {}
    for event_type in sorted(event_types):
        for name, hint in view_fields(_EVENT_CLASSES[event_type]).items():
            kind = category(hint)
            merged[name] = kind if merged.get(name, kind) == kind else UNKNOWN
    return merged


@lru_cache(maxsize=None)
def schema_for(kind: str | None, triggers: frozenset[str], reports_loan: bool,
               features: tuple[tuple[str, str], ...] | None = None) -> WhereSchema:
    """The names a rule of `kind` reads: `event` is the event that completed the pattern (one of `triggers`),
    `transfer` the same event when it is a transfer, `disbursement` the event when it is a disbursement, else the
    loan the finding is about when the kind reports one."""
    what = f"a {kind} rule" if kind else "this rule"
    triggers = frozenset(triggers) & frozenset(_EVENT_CLASSES)
    runs_on = " and ".join(f"{t}s" for t in sorted(triggers)) or "no event"
    roots = {"event": Root("event", _fields(triggers))}
    if "transfer" in triggers:
        roots["transfer"] = Root("transfer", _fields({"transfer"}))
    else:
        roots["transfer"] = Root("transfer", None, f"{what} runs on {runs_on} only, so `transfer` is always None")
    if "disbursement" in triggers or reports_loan:
        roots["disbursement"] = Root("disbursement", _fields({"disbursement"}))
    else:
        roots["disbursement"] = Root("disbursement", None,
                                     f"{what} runs on {runs_on} and does not report the loan the money came from, "
                                     f"so `disbursement` is always None")
    if features:
        roots["finding"] = Root("finding", dict(features))
    elif kind is None:
        roots["finding"] = Root("finding", {})
    else:
        roots["finding"] = Root("finding", None, f"{what} computes no features, so `finding` is always None")
    return WhereSchema(what, roots)


def schema_of_kind(kind: Any) -> WhereSchema:
    """The schema of a rule of this registered kind (anything with `name`, `triggers`, `reports_loan` and
    `features`)."""
    features = tuple(sorted(getattr(kind, "features", {}).items()))
    return schema_for(kind.name, frozenset(kind.triggers), bool(kind.reports_loan), features)


# Any rule: every root can hold an event. What `compile_where` checks against when it is not told the kind.
ANY_RULE = schema_for(None, frozenset(_EVENT_CLASSES), True)
