"""The rule language bound to the built-in kinds: how the worker, replay, rule tests and benchmarks load rules.

`stream.rules.loader` is handed its kinds (the rule language sits below detection and knows none); this is the
one place that hands it the detector's registry.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from ..rules import loader
from ..rules.model import RuleSet
from .kinds import KINDS

Paths = str | Path | Sequence[str | Path]


def load_rules(paths: Paths, overrides: Paths = (), *, window_ms: int | None = None) -> RuleSet:
    return loader.load_rules(paths, overrides, kinds=KINDS, window_ms=window_ms)


def check_rules(paths: Paths, overrides: Paths = (), *, window_ms: int | None = None) -> loader.CheckResult:
    return loader.check_rules(paths, overrides, kinds=KINDS, window_ms=window_ms)
