"""Offline detection over a recorded ledger: the production Detector, fed from a `.jsonl(.gz)` file.

What an analyst back-tests here is exactly what the worker does: same parser (with the detector's watermark,
so absurd future timestamps are refused the same way), same Detector, same warning JSON. `detected_at` is the
event time of the completing event, so two replays of one file give byte-identical output.
"""

from __future__ import annotations

import gc
import gzip
import io
from zlib import error as zlib_error
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Callable, Iterable, Iterator

from ..errors import EventError
from ..model.events import Event, parse_event
from ..detection.jump_guard import JumpGuard, Verdict
from ..rules.model import RuleSet
from ..model.warning import EarlyWarning

DEFAULT_MAX_BAD_SHOWN = 20
GC_THRESHOLD = (50_000, 20, 10)     # see `tuned_collector` and docs/performance.md
FREEZE_GC_EVERY = 100_000           # events between two gc freezes of the window (Detector freeze_gc_every)


@dataclass
class ReplayReport:
    lines: int = 0
    events: int = 0
    blank: int = 0
    bad: int = 0
    bad_samples: list[tuple[int, str]] = field(default_factory=list)     # (line number, reason) of the first N
    bad_by_reason: Counter = field(default_factory=Counter)
    warnings: int = 0
    by_rule: Counter = field(default_factory=Counter)
    detector_stats: Any = None
    read_error: str | None = None       # the file could not be read to its end (truncated gzip, I/O error)
    silent_rules: tuple[str, ...] = ()  # enabled rules that raised nothing

    def render(self) -> str:
        lines = [f"replayed {self.lines} lines: {self.events} events, {self.bad} bad lines skipped, "
                 f"{self.warnings} warnings"]
        if self.by_rule:
            width = max(len(rule) for rule in self.by_rule)
            lines += [f"  {rule:<{width}}  {count}" for rule, count in sorted(self.by_rule.items())]
        if self.bad:
            reasons = ", ".join(f"{reason} {count}" for reason, count in self.bad_by_reason.most_common())
            lines.append(f"bad lines by reason: {reasons}")
            shown = len(self.bad_samples)
            lines.append(f"bad lines ({'first ' + str(shown) if shown < self.bad else 'all'}):")
            lines += [f"  line {number}: {reason}" for number, reason in self.bad_samples]
        stats = self.detector_stats
        if stats:
            lines.append(f"window at the end: {stats.get('edges', 0):,} transfers between {stats.get('nodes', 0):,} "
                         f"accounts, {stats.get('lots', 0):,} traced lots of {stats.get('loans', 0):,} loans; "
                         f"{stats.get('late', 0):,} late events, {stats.get('duplicates', 0):,} duplicates")
            suppressed = stats.get("suppressed") or {}
            if suppressed:
                lines.append("held back by cooldowns: " + ", ".join(f"{rule} {count}"
                                                                   for rule, count in sorted(suppressed.items())))
            if self.silent_rules:
                lines.append(f"rules that raised nothing: {', '.join(self.silent_rules)}")
            for rule, count in sorted((stats.get("where_errors") or {}).items()):
                lines.append(f"rule {rule}: its `where` failed on {count} events (counted as not matching); "
                             f"`fundflow rules check` shows the expression")
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        """The report for machines (`fundflow replay --json`)."""
        return {"lines": self.lines, "events": self.events, "blank": self.blank, "bad": self.bad,
                "bad_by_reason": dict(self.bad_by_reason), "warnings": self.warnings,
                "warnings_by_rule": dict(self.by_rule), "read_error": self.read_error,
                "silent_rules": list(self.silent_rules),
                "bad_samples": [{"line": number, "error": error} for number, error in self.bad_samples],
                "detector": self.detector_stats}


def replay_lines(lines: Iterable[bytes], detector: Any, emit: Callable[[EarlyWarning], None], *,
                 max_bad_shown: int = DEFAULT_MAX_BAD_SHOWN) -> ReplayReport:
    """Feed numbered lines to `detector` (anything with `.process(event)` and `.watermark`); never raises on a
    bad line."""
    report = ReplayReport()
    guard: JumpGuard[tuple[int, Event]] = JumpGuard()
    process = detector.process

    def detect(number: int, event: Event) -> None:
        try:
            warnings = process(event)
        except EventError as exc:            # too old for the window
            report.events -= 1
            _count_bad(report, number, exc, max_bad_shown)
            return
        for warning in warnings:
            report.warnings += 1
            report.by_rule[warning.rule_id] += 1
            emit(warning)

    def settle(verdict: Verdict[tuple[int, Event]]) -> None:
        for (number, _), error in verdict.refused:
            report.events -= 1
            _count_bad(report, number, error, max_bad_shown)
        for number, event in verdict.released:
            detect(number, event)

    number = 0
    for number, line in enumerate(lines, start=1):
        if not line or line.isspace():      # blank (what `not line.strip()` says, without a copy of every line)
            report.blank += 1
            continue
        try:
            event = parse_event(line)
        except EventError as exc:
            _count_bad(report, number, exc, max_bad_shown)
            continue
        report.events += 1
        watermark = getattr(detector, "watermark", None)
        if guard.passes(event.ts, watermark):       # nothing held, not far ahead: released at once
            detect(number, event)
        else:
            settle(guard.offer(event.ts, event.event_id, (number, event), watermark))
    report.lines = number
    settle(guard.flush(getattr(detector, "watermark", None)))
    stats = getattr(detector, "stats", None)
    report.detector_stats = stats() if callable(stats) else None
    return report


def _count_bad(report: ReplayReport, number: int, error: EventError, max_bad_shown: int) -> None:
    report.bad += 1
    report.bad_by_reason[error.reason] += 1
    if len(report.bad_samples) < max_bad_shown:
        report.bad_samples.append((number, str(error)[:300]))


def replay_file(path: str | Path, ruleset: RuleSet, out: IO[bytes], *, window_ms: int, lateness_ms: int,
                progress: bool = True, max_bad_shown: int = DEFAULT_MAX_BAD_SHOWN,
                clock: Callable[[], int] | None = None, tracer: Any = None, partitions: int = 1,
                indicators: Any = None, identity_fields: tuple[str, ...] = ()) -> ReplayReport:
    """Replay one file, writing each warning as a JSON line to `out`. `clock` None = event time (deterministic);
    `tracer` the `TracerOptions` (None = the defaults); `partitions`, how many partitions the detection state is
    split into (the warnings are the same for any count); `indicators` the local indicator set (None: none)."""
    detector = replay_detector(ruleset, window_ms=window_ms, lateness_ms=lateness_ms, clock=clock, tracer=tracer,
                               partitions=partitions, indicators=indicators, identity_fields=identity_fields)

    def emit(warning: EarlyWarning) -> None:
        out.write(warning.to_json() + b"\n")

    with _open(Path(path)) as (lines, size, position), tuned_collector():
        bar = _progress_bar(size, progress)
        readable = _ReadableLines(lines)
        try:
            tracked = _tracking(readable, bar, position) if bar is not None else readable
            report = replay_lines(tracked, detector, emit, max_bad_shown=max_bad_shown)
        finally:
            if bar is not None:
                bar.close()
        report.read_error = readable.error
        report.silent_rules = tuple(sorted(rule.id for rule in ruleset.rules
                                           if rule.enabled and rule.id not in report.by_rule))
        return report


class _ReadableLines:
    """The file's lines until it cannot be read any further: a truncated gzip stream or an I/O error ends the
    iteration (with `error` saying why) instead of escaping from the middle of a replay, so what was read is
    still detected and reported."""

    def __init__(self, lines: Iterable[bytes]) -> None:
        self._lines = iter(lines)
        self.error: str | None = None
        self.read = 0

    def __iter__(self) -> Iterator[bytes]:
        while True:
            try:
                line = next(self._lines)
            except StopIteration:
                return
            except (EOFError, OSError, gzip.BadGzipFile, zlib_error) as exc:
                self.error = f"cannot read past line {self.read} ({type(exc).__name__}: {exc})"
                return
            self.read += 1
            yield line


def replay_detector(ruleset: RuleSet, *, window_ms: int, lateness_ms: int,
                    clock: Callable[[], int] | None = None, tracer: Any = None, partitions: int = 1,
                    indicators: Any = None, identity_fields: tuple[str, ...] = ()) -> Any:
    """The Detector as replay runs it: every `FREEZE_GC_EVERY` events the window is frozen out of the collector's
    sight, otherwise its occasional full collections rescan all of it (seconds each at 3M edges)."""
    from ..detection.detector import Detector

    return Detector(ruleset, window_ms=window_ms, lateness_ms=lateness_ms, clock=clock, tracer=tracer,
                    freeze_gc_every=FREEZE_GC_EVERY, partitions=partitions, indicators=indicators,
                    identity_fields=identity_fields)


@contextmanager
def tuned_collector() -> Iterator[None]:
    """Run the young generation of Python's collector every 50,000 allocations instead of 700, and freeze what
    each collection leaves alive. Restored afterwards.

    A replay allocates several objects per event, nearly all of them freed by reference counting or kept in the
    window, so frequent young collections only rescan survivors (a fifth of replay time with the default). What
    survives a collection is window state (adjacency dicts, inflows, lot lists) that stays until it expires and
    is then freed by reference counting, since detection state holds no reference cycles. Freezing it right
    after the collection that found it alive means each object is scanned once: before, every object was
    scanned again by the older generations' collections until the next periodic freeze (about 4% of replay
    time at 300k edges). Cyclic garbage still alive at a collection would not be collected; a replay makes
    none. What it froze stays frozen, as the periodic freeze left it: unfreezing would only hand the window to
    the full collection at interpreter exit."""
    previous = gc.get_threshold()
    gc.set_threshold(*GC_THRESHOLD)
    gc.callbacks.append(_freeze_survivors)
    try:
        yield
    finally:
        gc.callbacks.remove(_freeze_survivors)
        gc.set_threshold(*previous)


def _freeze_survivors(phase: str, info: dict) -> None:
    if phase == "stop":
        gc.freeze()


class _open:
    """Lines of a .jsonl or .jsonl.gz file, its size on disk and a function giving how far we have read."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self) -> tuple[Iterator[bytes], int, Callable[[], int]]:
        self.raw = open(self.path, "rb")
        size = self.path.stat().st_size
        stream: IO[bytes] = gzip.GzipFile(fileobj=self.raw) if self._gzipped() else self.raw
        self.stream = io.BufferedReader(stream) if isinstance(stream, gzip.GzipFile) else stream
        return iter(self.stream), size, self.raw.tell

    def _gzipped(self) -> bool:
        magic = self.raw.read(2)
        self.raw.seek(0)
        return magic == b"\x1f\x8b"

    def __exit__(self, *exc: object) -> None:
        self.stream.close()
        self.raw.close()


def _progress_bar(size: int, enabled: bool) -> Any:
    if not enabled or size < 1_000_000:          # a bar is noise on small files
        return None
    from tqdm import tqdm
    return tqdm(total=size, unit="B", unit_scale=True, desc="replay", leave=False, mininterval=0.5, disable=None)


def _tracking(lines: Iterable[bytes], bar: Any, position: Callable[[], int]) -> Iterator[bytes]:
    seen = 0
    for count, line in enumerate(lines):
        yield line
        if count % 1000 == 0:
            now = position()
            bar.update(now - seen)
            seen = now
