"""A rule as written, before it is compiled: each key's value with the file and line it came from.

Shared by the loader (which builds and compiles raw rules) and the overrides (which replace keys of them),
so an error about an overridden value points at the override file, not at the shipped rule.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any, Iterator, Protocol, Sequence

from .yamlsource import YMap


@dataclass
class Field:
    """One rule key's value and where it was written (the shipped file or an override)."""

    value: Any
    file: str
    line: int


@dataclass
class RawRule:
    id: str
    file: str
    line: int
    fields: dict[str, Field]
    params: dict[str, Field]
    extra_allow: list[Field]


class Reporter(Protocol):
    """What the override step needs of the loader: its problem list and its checks of mapping shapes."""

    def error(self, message: str, file: str, line: int | None, rule_id: str | None = None) -> None: ...

    def check_keys(self, mapping: YMap, allowed: tuple[str, ...], file: str, rule_id: str | None, *,
                   what: str, ordered: bool = False) -> None: ...

    def entries(self, file: str, doc: YMap, key: str, list_of: str, entry: str) -> Iterator[tuple[int, YMap]]: ...


def kind_of(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "text"
    return type(value).__name__


def did_you_mean(name: str, options: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, [str(o) for o in options], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""
