"""Which rules a command runs, said the same way by every command that runs rules.

An analyst back-testing a change, or an operator reading a worker's start, must be able to tell the pack it ran
(a stale copy, or the default pack instead of theirs) from its path and its rule set version.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

from ..rules.pack import RulePack, resolve_rules_dir


def default_pack(args: argparse.Namespace) -> RulePack:
    """The pack of the rules_dir setting (from --settings and FUNDFLOW_*), else the shipped one."""
    from ..settings import load_settings
    return resolve_rules_dir(load_settings(getattr(args, "settings", None)).rules_dir)


def given(paths: Sequence[Path], option: str | None = None) -> str:
    """Paths named on the command line, as `rules:` lines show them."""
    return ", ".join(str(Path(p).resolve()) for p in paths) + (f" ({option})" if option else "")


def rules_line(where: str, ruleset: object) -> str:
    version = getattr(ruleset, "version", "?")
    return f"rules: {where}, rule set version {version} ({len(ruleset)} rules)"   # type: ignore[arg-type]
