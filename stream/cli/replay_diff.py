"""`fundflow replay-diff A.jsonl B.jsonl`: what a second replay raises that the first did not, by rule."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import orjson


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "replay-diff", help="compare two replays' warnings files, by rule",
        description="Compare two warnings files written by `fundflow replay --out` (one warning per line): for "
                    "each rule, the warnings B adds, the ones it drops, and the ones it changes (same warning, "
                    "different content) with the fields that differ, then a total. Warnings are identified by "
                    "their id; when a rule's version differs, by the incident its id hashes where that can be "
                    "recovered (the loan, or the exact time of a rule without cooldown).")
    parser.add_argument("old", type=Path, metavar="A.jsonl", help="the first replay's warnings (.gz accepted)")
    parser.add_argument("new", type=Path, metavar="B.jsonl", help="the second replay's warnings (.gz accepted)")
    parser.add_argument("--json", action="store_true", help="the report as one JSON object")
    parser.add_argument("--exit-code", action="store_true", help="exit 1 when the warnings differ")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..offline.warning_diff import diff_warnings
    from ..offline.warnings_file import read_warnings_file

    old, new = read_warnings_file(args.old), read_warnings_file(args.new)
    result = diff_warnings(old, new)
    old_name, new_name = str(args.old), str(args.new)
    if args.json:
        sys.stdout.write(orjson.dumps(result.to_dict(old_name, new_name), option=orjson.OPT_SORT_KEYS).decode() + "\n")
    else:
        print(result.render(old_name, new_name))
    return 1 if args.exit_code and not result.empty else 0
