"""Which rule pack runs when a command is not given one: the `rules_dir` setting when that directory exists,
else the default pack shipped inside the package.

The default pack is the repository's top-level `rules/` directory (rules, their tests, the reference). A
non-editable install carries it as the package data `stream/rulepack` (pyproject.toml maps `rules/` there); a
source checkout reads it in place. So `fundflow replay ledger.jsonl` and `fundflow rules test` work from any
directory. A deployment that points `rules_dir` somewhere else never silently runs the default instead: a
configured directory that does not exist is an error, and only the setting's default falls back.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from importlib import resources
from pathlib import Path

from ..errors import FundflowError
from ..settings import Settings

PACKAGE_DATA = "rulepack"                 # stream/rulepack in an installed package
SETTING, SHIPPED = "the rules_dir setting", "the pack shipped with fundflow"
_RULE_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class RulePack:
    path: Path
    source: str                           # SETTING or SHIPPED

    def describe(self) -> str:
        return f"{self.path.resolve()} ({self.source})"


def default_rules_dir() -> str:
    """The default of the `rules_dir` setting, read from `Settings` so the two never disagree."""
    return next(f.default for f in fields(Settings) if f.name == "rules_dir")


def resolve_rules_dir(rules_dir: str | os.PathLike[str]) -> RulePack:
    """The configured directory if it exists; else, when the setting was left at its default, the shipped pack."""
    path = Path(rules_dir)
    if path.exists():
        return RulePack(path, SETTING)
    if str(rules_dir) != default_rules_dir():
        raise FundflowError(f"rules_dir {str(rules_dir)!r}: no such directory (from --settings or "
                            f"FUNDFLOW_RULES_DIR); point it at your rule files, or unset it to run {SHIPPED}")
    return RulePack(shipped_pack(), SHIPPED)


def shipped_pack() -> Path:
    """The default pack: `rules/` beside the package in a source checkout, else the installed package data."""
    package = Path(str(resources.files("stream")))
    checkout = package.parent
    if (checkout / "pyproject.toml").is_file() and _has_rules(checkout / "rules"):
        return checkout / "rules"
    installed = package / PACKAGE_DATA
    if _has_rules(installed):
        return installed
    raise FundflowError(f"the rule pack shipped with fundflow is missing from this installation (no rule files in "
                        f"{installed}); reinstall fundflow, or set rules_dir (FUNDFLOW_RULES_DIR) to your rules")


def _has_rules(path: Path) -> bool:
    return path.is_dir() and any(p.name.endswith(_RULE_SUFFIXES) for p in path.iterdir())
