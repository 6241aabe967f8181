"""`fundflow replay EVENTS.jsonl[.gz]`: offline detection with the production detector; warnings as JSON lines."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import orjson

from ..model import defaults
from .argtypes import duration_ms, positive_whole_number


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "replay", help="run the detector over a recorded ledger file",
        description="Parse each line like the worker does, run the detector, and write every warning as a JSON "
                    "line (docs/architecture.md §5) to stdout or --out. Bad lines are reported and skipped. "
                    "detected_at is the event time, so the output is the same on every run.")
    parser.add_argument("events", type=Path, metavar="EVENTS.jsonl", help="one JSON event per line; .gz accepted")
    parser.add_argument("--rules", type=Path, action="append", default=None, metavar="DIR|FILE",
                        help="rule directory or file (repeatable; default: the rules_dir setting when that "
                             "directory exists, else the pack shipped with fundflow)")
    parser.add_argument("--overrides", type=Path, action="append", default=[], metavar="FILE",
                        help="a per-deployment override file (repeatable)")
    parser.add_argument("--out", type=Path, default=None, metavar="FILE", help="write warnings here, not stdout")
    parser.add_argument("--window", type=duration_ms, default=None, metavar="DURATION",
                        help="event-time window of the graph (default: the window setting, 72h)")
    parser.add_argument("--lateness", type=duration_ms, default=None, metavar="DURATION",
                        help="allowed lateness (default: the allowed_lateness setting, 5m)")
    parser.add_argument("--tracer-policy", choices=defaults.TRACER_POLICIES, default=None,
                        help="which money an outflow spends first (default: the tracer_policy setting, lifo)")
    parser.add_argument("--trace-inflows-above", default=None, metavar="AMOUNT",
                        help="also trace inflows of unknown origin of at least AMOUNT units, for ledgers "
                             "without disbursements (default: the trace_inflows_above setting, off)")
    parser.add_argument("--partitions", type=positive_whole_number, default=1, metavar="N",
                        help="split the detection state into N partitions by key, as N workers hold it, with "
                             "every hop between them on an in-memory queue (default 1); the warnings are the "
                             "same for every N")
    parser.add_argument("--indicators", type=Path, default=None, metavar="DIR",
                        help="the local indicator set to run with (a directory `fundflow indicators import` wrote; "
                             "default: the indicators_dir setting, none when unset); hashed under indicator_keys")
    parser.add_argument("--show-bad", type=int, default=20, metavar="N", help="list at most N bad lines (20)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--json", action="store_true",
                        help="the summary on stderr as one JSON object instead of text (for scripts)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..errors import FundflowError
    from ..offline.replay import replay_file
    from ..detection.rulebook import load_rules
    from ..rules.pack import resolve_rules_dir
    from ..settings import load_settings
    from .rulesource import given, rules_line

    overrides = {name: value for name, value in (("tracer_policy", args.tracer_policy),
                                                  ("trace_inflows_above", args.trace_inflows_above))
                 if value is not None}
    settings = load_settings(args.settings).with_overrides(**overrides)
    options = detector_options(settings, window=args.window, lateness=args.lateness)
    check_ledger(args.events)
    if args.rules:
        paths, where, source = args.rules, given(args.rules, "--rules"), "--rules"
    else:
        pack = resolve_rules_dir(settings.rules_dir)
        paths, where, source = [pack.path], pack.describe(), pack.source
    ruleset = load_rules(paths, args.overrides, window_ms=options["window_ms"])
    rules_used = {"paths": [str(Path(p).resolve()) for p in paths], "source": source, "version": ruleset.version,
                  "rules": len(ruleset)}
    from ..indicators.configured import configured_set
    indicators = configured_set(settings, args.indicators)
    if not args.json:
        print(rules_line(where, ruleset), file=sys.stderr)
        if indicators or args.indicators or settings.indicators_dir:
            print(f"indicators: {indicators.path or args.indicators}: {indicators.describe()}", file=sys.stderr)
    try:
        out = open(args.out, "wb") if args.out else sys.stdout.buffer
    except OSError as exc:
        raise FundflowError(f"--out {args.out}: cannot write there ({exc.strerror})") from None
    try:
        report = replay_file(args.events, ruleset, out, progress=not args.no_progress,
                             max_bad_shown=max(args.show_bad, 0), partitions=args.partitions,
                             indicators=indicators, **options)
    finally:
        if args.out:
            out.close()
        else:
            out.flush()
    if args.json:
        print(orjson.dumps({**report.as_dict(), "rules": rules_used}, option=orjson.OPT_SORT_KEYS).decode(),
              file=sys.stderr)
    else:
        print(report.render(), file=sys.stderr)
    if report.read_error:
        raise FundflowError(f"{args.events}: {report.read_error}; the {report.warnings} warnings of the lines "
                            f"before were written")
    return 0


def detector_options(settings: Any, *, window: int | None = None, lateness: int | None = None) -> dict[str, Any]:
    """How `replay_file` runs the detector under these settings (window, lateness, tracer), so every command
    that replays a ledger (`replay`, `rules diff --replay`) runs it alike; `window` and `lateness` override."""
    from ..detection.tracer import TracerOptions
    from ..errors import FundflowError

    window = window if window is not None else settings.window
    lateness = lateness if lateness is not None else settings.allowed_lateness
    if lateness >= window:
        raise FundflowError("--lateness must be shorter than --window")
    return {"window_ms": window, "lateness_ms": lateness, "tracer": TracerOptions.from_settings(settings),
            "identity_fields": tuple(getattr(settings, "identity_fields", ()))}


def check_ledger(path: Path) -> None:
    """A ledger that is not there is one line naming it, before any rule is loaded."""
    from ..errors import FundflowError

    if path.is_dir():
        raise FundflowError(f"{path}: is a directory; give a ledger file (.jsonl or .jsonl.gz)")
    if not path.is_file():
        raise FundflowError(f"{path}: no such file")
