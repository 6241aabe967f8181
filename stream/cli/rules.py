"""`fundflow rules check|test|diff`: what an analyst runs before a rule change ships."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from .argtypes import duration_ms
from ..model.timefmt import format_duration_ms


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("rules", help="check, test and compare rule files",
                                   description="Validate rule files, run rule tests, compare two rule packs.")
    commands = parser.add_subparsers(dest="rules_command", metavar="SUBCOMMAND")

    check = commands.add_parser(
        "check", help="validate rule files (exit 1 on any error or warning)",
        description="Load rule files into the real rule engine and report every problem with its file and line. "
                    "Warnings (keys out of order, an extra input field named like a standard one) fail the check "
                    "too. Without DIR|FILE: the rules_dir setting when that directory exists, else the pack "
                    "shipped with fundflow.")
    check.add_argument("paths", nargs="*", type=Path, metavar="DIR|FILE",
                       help="rule directories or files (default: the rules_dir setting when that directory exists, "
                            "else the pack shipped with fundflow)")
    check.add_argument("--overrides", action="append", type=Path, default=[], metavar="FILE",
                       help="a per-deployment override file (repeatable); *.override.yaml in a DIR are read anyway")
    check.add_argument("--window", type=duration_ms, default=None, metavar="DURATION",
                       help="detector window thresholds are checked against (default: the window setting)")
    check.set_defaults(func=run_check)

    test = commands.add_parser(
        "test", help="run rule tests (*.test.yaml)",
        description="Run each rule test through the real detector and compare the warnings with the expected "
                    "ones. Exit 1 if any test fails.")
    test.add_argument("paths", nargs="*", type=Path, metavar="DIR|FILE",
                      help="test files, or directories searched for *.test.yaml (default: the rules_dir setting "
                           "when that directory exists, else the pack shipped with fundflow)")
    test.add_argument("--run", default=None, metavar="TEXT", help="only the tests whose name contains TEXT")
    test.set_defaults(func=run_test)

    diff = commands.add_parser(
        "diff", help="compare two rule packs",
        description="Rules added, removed and changed between OLD and NEW; for each changed threshold whether the "
                    "rule now fires more (loosened) or less (tightened). With --replay LEDGER, also what the change "
                    "does: the ledger replayed under each pack, and by rule the warnings NEW adds, drops and "
                    "changes.")
    diff.add_argument("old", type=Path, metavar="OLD", help="rule directory or file")
    diff.add_argument("new", type=Path, metavar="NEW", help="rule directory or file")
    diff.add_argument("--exit-code", action="store_true",
                      help="exit 1 when the packs differ (with --replay: or the warnings do)")
    diff.add_argument("--replay", type=Path, default=None, metavar="LEDGER",
                      help="also replay LEDGER (.jsonl[.gz]) under each pack, as `fundflow replay` does with the "
                           "settings' window, lateness and tracer, and report by rule the warnings NEW adds, "
                           "drops and changes (the report of `fundflow replay-diff`)")
    diff.set_defaults(func=run_diff)

    kinds = commands.add_parser("kinds", help="list the kinds and their parameters (markdown)",
                                description="Every registered kind with its parameters, defaults and meaning.")
    kinds.set_defaults(func=run_kinds)
    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])


def run_check(args: argparse.Namespace) -> int:
    from ..detection.rulebook import check_rules

    paths, where = _paths_or_default(args)
    window = args.window if args.window is not None else _settings_window(args)
    result = check_rules(paths, args.overrides, window_ms=window)
    for problem in result.errors + result.warnings:
        print(problem.located())
    if not result.ok:
        print(f"FAILED: {len(result.errors)} error(s), {len(result.warnings)} warning(s) in "
              f"{len(result.rule_files)} rule file(s) of {where}")
        return 1
    ruleset = result.ruleset
    assert ruleset is not None
    print(f"OK: {len(ruleset)} rules ({len(ruleset.enabled)} enabled) from {len(result.rule_files)} file(s) of "
          f"{where}, "
          f"{len(result.lists)} shared list(s), {result.overrides_applied} override(s) from "
          f"{len(result.override_files)} file(s); checked against a {format_duration_ms(window)} window; "
          f"rule set version {ruleset.version}")
    by_kind = Counter(rule.kind for rule in ruleset.rules)
    for kind in sorted(by_kind):
        ids = ", ".join(rule.id + ("" if rule.enabled else " (disabled)") for rule in ruleset.rules
                        if rule.kind == kind)
        print(f"  {kind:<16} {by_kind[kind]:>2}  {ids}")
    return 0


def run_test(args: argparse.Namespace) -> int:
    from ..offline.rule_tests import find_test_files, run_test_file

    paths, where = _paths_or_default(args)
    print(f"rules: {where}")
    files = find_test_files(paths)
    if not files:
        print("no rule test files (*.test.yaml) found in " + ", ".join(map(str, paths)), file=sys.stderr)
        return 1
    passed = failed = 0
    for file in files:
        report = run_test_file(file, name_filter=args.run)
        print(report.render())
        passed += report.passed
        failed += report.failed
    print(f"{'SUCCESS' if not failed else 'FAILED'}: {passed} passed, {failed} failed in {len(files)} file(s)")
    return 1 if failed else 0


def run_diff(args: argparse.Namespace) -> int:
    from ..rules.diff import diff_rulesets
    from ..detection.rulebook import load_rules
    from ..detection.kinds import KINDS

    kinds = KINDS
    replay = None
    if args.replay is not None:
        from ..settings import load_settings
        from .replay import check_ledger, detector_options

        check_ledger(args.replay)
        replay = detector_options(load_settings(args.settings))
    window = replay["window_ms"] if replay else None       # replayed rules are checked against the window
    old = load_rules(args.old, window_ms=window)
    new = load_rules(args.new, window_ms=window)
    result = diff_rulesets(old, new, kinds)
    print(result.render())
    differ = not result.empty
    if replay is not None:
        differ = _replay_diff(args, old, new, replay) or differ
    return 1 if args.exit_code and differ else 0


def _replay_diff(args: argparse.Namespace, old: Any, new: Any, options: dict[str, Any]) -> bool:
    """Replay the ledger under each pack and print what NEW changes in the warnings; True when it changes any.
    Each pack's cooldowns let warnings of an edited rule be matched by incident (stream/offline/warning_diff.py)."""
    from ..offline.warning_diff import diff_warnings

    print(f"\n== warnings of {args.replay}, replayed under {args.old} and under {args.new}")
    old_warnings = _replayed(args.replay, old, args.old, options)
    new_warnings = _replayed(args.replay, new, args.new, options)
    result = diff_warnings(old_warnings, new_warnings,
                           old_cooldowns={rule.id: rule.cooldown.ms for rule in old.rules},
                           new_cooldowns={rule.id: rule.cooldown.ms for rule in new.rules})
    print(result.render(str(args.old), str(args.new)))
    return not result.empty


def _replayed(ledger: Path, ruleset: Any, name: Path, options: dict[str, Any]) -> list:
    """The warnings `fundflow replay LEDGER --rules NAME` would write, read back as a warnings file is."""
    import io

    from ..errors import FundflowError
    from ..offline.replay import replay_file
    from ..offline.warnings_file import parse_warning_lines

    out = io.BytesIO()
    report = replay_file(ledger, ruleset, out, **options)
    if report.read_error:
        raise FundflowError(f"{ledger}: {report.read_error}; no comparison made")
    print(f"under {name}: {report.events} events, {report.bad} bad lines skipped, {report.warnings} warnings")
    return parse_warning_lines(out.getvalue().splitlines(), f"the replay of {ledger} under {name}")


def run_kinds(args: argparse.Namespace) -> int:
    from ..detection.kinds import KINDS
    print(kinds_reference(KINDS))
    return 0


def kinds_reference(kinds: dict) -> str:
    """The kinds as markdown: what rules/README.md shows, generated from the registry so it cannot drift."""
    out = []
    for name, kind in kinds.items():
        summary = kind.doc.split("\n\n")[0].replace("\n", " ")
        summary = summary.split(": ", 1)[1] if summary.startswith(name + ":") else summary
        out += [f"### `{name}`", "", summary[:1].upper() + summary[1:], "",
                f"Triggered by: {', '.join(sorted(kind.triggers))}. {_where_reads(kind)}", "",
                "| param | default | looser when | meaning |", "|---|---|---|---|"]
        for param in kind.params:
            shown = param.show(param.default)
            if isinstance(shown, list):
                shown = "[" + ", ".join(map(str, shown)) + "]"
            elif isinstance(shown, bool):
                shown = str(shown).lower()
            looser = param.looser or "-"
            out.append(f"| `{param.name}` | `{shown}` | {looser} | {param.doc.replace('|', '/')} |")
        out.append("")
    return "\n".join(out)


def _where_reads(kind) -> str:
    """Which names a `where` of this kind's rules may read (the rest are always None and refused)."""
    from ..rules.schema import schema_of_kind
    readable = schema_of_kind(kind).readable
    names = [f"`{root}`" for root in ("event", "transfer", "disbursement") if root in readable]
    if "disbursement" in readable and "disbursement" not in kind.triggers:
        names[-1] += " (the loan the money came from, when it is known)"
    if "finding" in readable:
        features = ", ".join(f"`{name}`" for name in sorted(kind.features))
        names.append(f"`finding` (what the kind computed: {features})")
    listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    return f"A `where` reads {listed}."


def _paths_or_default(args: argparse.Namespace) -> tuple[list[Path], str]:
    """The paths given, or the default pack; and how the `rules:` line names them."""
    from .rulesource import default_pack, given
    if args.paths:
        return list(args.paths), given(args.paths)
    pack = default_pack(args)
    return [pack.path], pack.describe()


def _settings_window(args: argparse.Namespace) -> int:
    from ..settings import load_settings
    return load_settings(getattr(args, "settings", None)).window

