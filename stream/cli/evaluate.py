"""`fundflow evaluate WARNINGS.jsonl TRUTH.json`: recall, precision and look-alike noise of a replay."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate", help="score warnings against a labelled ledger's truth file",
        description="Match warnings (JSON lines from `fundflow replay`) to the planted instances and look-alikes "
                    "of a truth file (from `fundflow simulate`, or the AMLSim benchmark) and report recall per "
                    "typology, precision, warnings on look-alikes and per-rule counts. A warning overlaps an "
                    "instance when it shares >= 1 txn id, >= 1 loan id or >= 2 accounts with it.")
    parser.add_argument("warnings", type=Path, metavar="WARNINGS.jsonl", help="warnings, one per line (.gz accepted)")
    parser.add_argument("truth", type=Path, metavar="TRUTH.json", help="labels: planted instances and look-alikes")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import orjson

    from ..offline.evaluate import evaluate, read_warnings, render_table
    from ..simulate.truth import load_truth

    truth = load_truth(args.truth)
    result = evaluate(read_warnings(args.warnings), truth)
    text = orjson.dumps(result.to_dict(), option=orjson.OPT_INDENT_2).decode() if args.json else render_table(result)
    try:
        print(text, flush=True)
    except BrokenPipeError:         # `fundflow evaluate ... | head` is fine
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0
