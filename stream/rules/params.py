"""Parameter types of the rule language.

Each kind declares its parameters as `Param`s (in its own module under `detection/kinds/`); the loader
uses them to fill defaults, convert analyst text (`30m`, `0.7`, a list name) into typed values and refuse
anything else with a message saying what the parameter expects.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

from ..model.timefmt import format_duration_ms, parse_duration_ms
from .rawrule import did_you_mean

# Resolves a list reference (a bare name defined under `lists:`) to its items; raises KeyError if unknown.
ListLookup = Callable[[str], tuple[str, ...]]


@dataclass(frozen=True)
class Param:
    name: str
    parse: Callable[[Any, ListLookup], Any]   # raises ValueError with what was expected
    default: Any                               # already-parsed value
    doc: str
    # "looser" tells `rules diff` which direction loosens the rule: "lower" (a lower value fires more
    # often, e.g. min_ratio), "higher" (e.g. within) or None (not ordered).
    looser: str | None = None
    show: Callable[[Any], Any] = lambda value: value   # parsed value -> analyst text (for diffs, docs)
    # False for a parameter added to a kind after rules were deployed, whose default keeps the kind's old
    # behaviour: left at its default it stays out of the rule's version, so existing warning ids do not change.
    versioned_at_default: bool = True


def duration(value: Any, _lists: ListLookup | None = None) -> int:
    return parse_duration_ms(value)


def ratio(value: Any, _lists: ListLookup | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"expected a number between 0 and 1, got {value!r}")
    if not 0 <= value <= 1:
        raise ValueError(f"expected a number between 0 and 1 (a share), got {value!r}; "
                         f"a share above 1 can never be met")
    return float(value)


def count(minimum: int = 1, maximum: int | None = None) -> Callable[[Any, ListLookup | None], int]:
    def parse(value: Any, _lists: ListLookup | None = None) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"expected a whole number, got {value!r}")
        if value < minimum or (maximum is not None and value > maximum):
            upper = f" and at most {maximum}" if maximum is not None else ""
            raise ValueError(f"expected at least {minimum}{upper}, got {value}")
        return value
    return parse


def money(value: Any, _lists: ListLookup | None = None) -> int:
    """A money threshold in units (e.g. 1000 or "1000.00") -> minor units; 0 allowed."""
    from ..model.money import parse_amount_minor
    if isinstance(value, bool):
        raise ValueError(f"expected an amount like 1000 or \"1000.00\", got {value!r}")
    if value == 0 or value in ("0", "0.0", "0.00"):     # "0.00" is how a zero threshold is shown (show_money)
        return 0
    return parse_amount_minor(value)


def boolean(value: Any, _lists: ListLookup | None = None) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {value!r}")
    return value


def choice(*options: str) -> Callable[[Any, ListLookup | None], str]:
    def parse(value: Any, _lists: ListLookup | None = None) -> str:
        if value not in options:
            raise ValueError(f"expected one of {', '.join(options)}, got {value!r}")
        return value
    return parse


def string_set(value: Any, lists: ListLookup | None = None) -> frozenset[str]:
    """A YAML list of strings, or the name of a shared list defined under `lists:`."""
    if isinstance(value, str):
        if lists is None:
            raise ValueError(f"list reference {value!r} cannot be resolved here")
        try:
            return frozenset(lists(value))
        except KeyError:
            raise ValueError(f"unknown list {value!r}; define it under `lists:`") from None
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"expected a list of strings or the name of a shared list, got {value!r}")
    items = []
    for item in value:
        if isinstance(item, bool) or not isinstance(item, (str, int)):
            raise ValueError(f"expected strings in the list, got {item!r}")
        items.append(str(item))
    return frozenset(items)


def show_duration(ms: int) -> str:
    return format_duration_ms(ms)


def show_set(items: frozenset[str]) -> list[str]:
    return sorted(items)


def apply_params(specs: tuple[Param, ...], raw: Mapping[str, Any] | None, lists: ListLookup
                 ) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """Defaults + given values -> parsed params, and a list of (param, problem) for what was refused."""
    raw = dict(raw or {})
    by_name = {spec.name: spec for spec in specs}
    problems: list[tuple[str, str]] = []
    for name in raw:
        if name not in by_name:
            problems.append((name, f"unknown parameter {name!r}{did_you_mean(str(name), tuple(by_name))}; "
                                   f"this kind takes: {', '.join(by_name)}"))
    values: dict[str, Any] = {}
    for spec in specs:
        if spec.name not in raw:
            values[spec.name] = spec.default
            continue
        try:
            values[spec.name] = spec.parse(raw[spec.name], lists)
        except (ValueError, TypeError) as exc:
            problems.append((spec.name, f"params.{spec.name}: {exc}"))
    return values, problems
