"""Hot reload of the rules directory: analysts ship a rule change without restarting the worker.

A restart would cost a full state rebuild (see `recovery`), so the worker watches `rules_dir` itself. It
compares a fingerprint (file names, sizes, mtimes and a content hash) every `rules_reload_interval`; on a
change it loads the whole set again with the same loader `fundflow rules check` uses. A set that loads is
swapped in atomically (`Detector.replace_rules`: graph, lots and cooldowns stay); a set that does not
leaves the running one in place, and every error is logged as file:line, so a typo saved by an editor never
takes detection down. The fingerprint of a failed set is remembered, so the same broken files are reported
once, not every interval.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from ..errors import RuleError, RuleSetError
from ..rules.model import RuleSet

log = logging.getLogger(__name__)

LoadRules = Callable[[], RuleSet]


def rules_fingerprint(rules_dir: str | Path) -> str:
    """A hash over every file under `rules_dir`: relative name, size, mtime and content.

    Content is included because an editor can save a same-sized file within the mtime resolution;
    mtime is included so a touch alone is also noticed cheaply on file systems where it matters.
    """
    root = Path(rules_dir)
    digest = hashlib.sha256()
    if not root.exists():
        return "missing"
    paths = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
    for path in paths:
        try:
            stat = path.stat()
            content = path.read_bytes()
        except OSError:
            continue                        # removed between listing and reading: the next check sees it
        name = str(path.relative_to(root)) if root.is_dir() else path.name
        digest.update(f"{name}\0{stat.st_size}\0{stat.st_mtime_ns}\0".encode())
        digest.update(hashlib.sha256(content).digest())
    return digest.hexdigest()


@dataclass(frozen=True)
class ReloadResult:
    """What one check did: nothing (unchanged), swapped in a new set, or refused a broken one."""

    changed: bool
    ok: bool = True
    version: str = ""
    summary: str = ""                       # what changed (rules added/removed/changed) or the errors
    errors: tuple[str, ...] = ()


class RuleReloader:
    """Holds the running rule set and swaps in new ones; `current` is what a fresh detector is built with."""

    def __init__(self, rules_dir: str | Path, initial: RuleSet, load: LoadRules, *,
                 apply: Callable[[RuleSet], None] = lambda rules: None,
                 kinds: Mapping[str, Any] | None = None) -> None:
        self.rules_dir = Path(rules_dir)
        self.current = initial
        self._load = load
        self.apply = apply                  # set by the worker: the running detector takes the new set
        self._kinds = kinds
        self._fingerprint = rules_fingerprint(self.rules_dir)
        self.reloads_ok = 0
        self.reloads_failed = 0

    def check(self) -> ReloadResult:
        fingerprint = rules_fingerprint(self.rules_dir)
        if fingerprint == self._fingerprint:
            return ReloadResult(changed=False, version=self.current.version)
        self._fingerprint = fingerprint
        try:
            new = self._load()
        except RuleSetError as exc:
            return self._refused(tuple(error.located() for error in exc.errors))
        except RuleError as exc:
            return self._refused((exc.located(),))
        try:
            self.apply(new)                 # compiles first; raises before anything is swapped
        except RuleError as exc:
            return self._refused((exc.located(),))
        old, self.current = self.current, new
        self.reloads_ok += 1
        summary = self._describe(old, new)
        log.info("rules reloaded from %s: version %s -> %s\n%s", self.rules_dir, old.version, new.version, summary)
        return ReloadResult(changed=True, ok=True, version=new.version, summary=summary)

    def _refused(self, errors: tuple[str, ...]) -> ReloadResult:
        self.reloads_failed += 1
        log.error("rules in %s not reloaded, still running version %s; %d error(s):\n%s", self.rules_dir,
                  self.current.version, len(errors), "\n".join(errors))
        return ReloadResult(changed=True, ok=False, version=self.current.version, summary="\n".join(errors),
                            errors=errors)

    def _describe(self, old: RuleSet, new: RuleSet) -> str:
        from ..rules.diff import diff_rulesets
        from ..detection.kinds import KINDS

        return diff_rulesets(old, new, self._kinds if self._kinds is not None else KINDS).render()
