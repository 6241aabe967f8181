"""Hot reload of the rules directory (and of the indicator set): analysts ship a rule change, and the members' feeds
are imported, without restarting the worker.

A restart would cost a full state rebuild (see `recovery`), so the worker watches `rules_dir` itself. It
compares a fingerprint (file names, sizes, mtimes and a content hash) every `rules_reload_interval`; on a
change it loads the whole set again with the same loader `fundflow rules check` uses. A set that loads is
swapped in atomically (`Detector.replace_rules`: graph, lots and cooldowns stay); a set that does not
leaves the running one in place, and every error is logged as file:line, so a typo saved by an editor never
takes detection down. The fingerprint of a failed set is remembered, so the same broken files are reported
once, not every interval.

The same mechanism reloads `indicators_dir` (the local indicator set `fundflow indicators import` writes,
docs/sharing.md): `DirectoryReloader` is the fingerprint, load, apply and refuse cycle; `RuleReloader` and
`IndicatorReloader` say what they load, which errors refuse a load and how a change is described.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Generic, Mapping, TypeVar

from ..errors import FundflowError, RuleError, RuleSetError
from ..rules.model import RuleSet

log = logging.getLogger(__name__)

LoadRules = Callable[[], RuleSet]
T = TypeVar("T")


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


class DirectoryReloader(Generic[T]):
    """Holds what was loaded from a directory and swaps in a new load when the directory's fingerprint changes;
    `current` is what a fresh detector is built with. Subclasses say what they load (`what`), the errors that
    refuse a load (`_errors`), a version to log and how a change reads."""

    what = "files"

    def __init__(self, directory: str | Path, initial: T, load: Callable[[], T], *,
                 apply: Callable[[T], None] = lambda value: None) -> None:
        self.directory = Path(directory)
        self.current = initial
        self._load = load
        self.apply = apply                  # set by the worker: the running detector takes the new value
        self._fingerprint = rules_fingerprint(self.directory)
        self.reloads_ok = 0
        self.reloads_failed = 0

    def check(self) -> ReloadResult:
        fingerprint = rules_fingerprint(self.directory)
        if fingerprint == self._fingerprint:
            return ReloadResult(changed=False, version=self._version(self.current))
        self._fingerprint = fingerprint
        try:
            new = self._load()
            self.apply(new)                 # compiles first; raises before anything is swapped
        except Exception as exc:            # noqa: BLE001 - only the errors a subclass knows are a refusal
            errors = self._errors(exc)
            if errors is None:
                raise
            return self._refused(errors)
        old, self.current = self.current, new
        self.reloads_ok += 1
        summary = self._describe(old, new)
        log.info("%s reloaded from %s: version %s -> %s\n%s", self.what, self.directory, self._version(old),
                 self._version(new), summary)
        return ReloadResult(changed=True, ok=True, version=self._version(new), summary=summary)

    def _refused(self, errors: tuple[str, ...]) -> ReloadResult:
        self.reloads_failed += 1
        log.error("%s in %s not reloaded, still running version %s; %d error(s):\n%s", self.what, self.directory,
                  self._version(self.current), len(errors), "\n".join(errors))
        return ReloadResult(changed=True, ok=False, version=self._version(self.current), summary="\n".join(errors),
                            errors=errors)

    def _errors(self, exc: Exception) -> tuple[str, ...] | None:
        """The error lines of a refused load, or None for an exception that is not a refusal (it propagates)."""
        return (str(exc),) if isinstance(exc, FundflowError) else None

    def _version(self, value: T) -> str:
        return getattr(value, "version", "")

    def _describe(self, old: T, new: T) -> str:
        return ""


class RuleReloader(DirectoryReloader[RuleSet]):
    """The running rule set of `rules_dir`."""

    what = "rules"

    def __init__(self, rules_dir: str | Path, initial: RuleSet, load: LoadRules, *,
                 apply: Callable[[RuleSet], None] = lambda rules: None,
                 kinds: Mapping[str, Any] | None = None) -> None:
        super().__init__(rules_dir, initial, load, apply=apply)
        self._kinds = kinds

    @property
    def rules_dir(self) -> Path:
        return self.directory

    def _errors(self, exc: Exception) -> tuple[str, ...] | None:
        if isinstance(exc, RuleSetError):
            return tuple(error.located() for error in exc.errors)
        if isinstance(exc, RuleError):
            return (exc.located(),)
        return None

    def _describe(self, old: RuleSet, new: RuleSet) -> str:
        from ..rules.diff import diff_rulesets
        from ..detection.kinds import KINDS

        return diff_rulesets(old, new, self._kinds if self._kinds is not None else KINDS).render()


class IndicatorReloader(DirectoryReloader[Any]):
    """The local indicator set of `indicators_dir` (an `IndicatorSet`); a file that does not read, or that does
    not fit the consortium keys held here, is refused and the running set stays."""

    what = "indicators"

    def _version(self, value: Any) -> str:
        return f"{len(value)} indicators"

    def _describe(self, old: Any, new: Any) -> str:
        return f"now {new.describe()}"
