"""`fundflow evaluate WARNINGS.jsonl TRUTH.json`: recall, precision and look-alike noise of a replay;
`fundflow evaluate --labels`: each rule's precision from the analysts' triage labels in the warning store."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ..errors import FundflowError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate", help="score warnings against a labelled ledger's truth file, or against triage labels",
        usage="fundflow evaluate WARNINGS.jsonl TRUTH.json [--json]\n"
              "       fundflow evaluate --labels [--store URL] [--rules DIR] [--days N] [--json]",
        description="Match warnings (JSON lines from `fundflow replay`) to the planted instances and look-alikes "
                    "of a truth file (from `fundflow simulate`, or the AMLSim benchmark) and report recall per "
                    "typology, precision, warnings on look-alikes and per-rule counts. A warning overlaps an "
                    "instance when it shares >= 1 txn id, >= 1 loan id or >= 2 accounts with it. With --labels, "
                    "read the triage labels of the warning store instead (the console's rules page): per rule "
                    "and version, warnings, share labelled, precision = confirmed / (confirmed + false "
                    "positive), median time to triage.")
    parser.add_argument("warnings", type=Path, nargs="?", metavar="WARNINGS.jsonl",
                        help="warnings, one per line (.gz accepted)")
    parser.add_argument("truth", type=Path, nargs="?", metavar="TRUTH.json",
                        help="labels: planted instances and look-alikes")
    parser.add_argument("--labels", action="store_true",
                        help="precision per rule from the triage labels in the warning store")
    parser.add_argument("--store", metavar="URL", help="with --labels: override clickhouse_url")
    parser.add_argument("--rules", metavar="DIR", help="with --labels: the rules whose silence and load errors "
                                                       "are reported (default: rules_dir)")
    parser.add_argument("--days", metavar="N", type=int, default=7,
                        help="with --labels: rules with no warning in the last N days of event time (default 7)")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import orjson

    if args.labels:
        if args.warnings is not None:
            raise FundflowError("--labels reads the warning store: give no WARNINGS.jsonl or TRUTH.json")
        text = _from_labels(args)
    else:
        if args.warnings is None or args.truth is None:
            raise FundflowError("expected WARNINGS.jsonl TRUTH.json, or --labels")
        from ..offline.evaluate import evaluate, read_warnings, render_table
        from ..simulate.truth import load_truth

        truth = load_truth(args.truth)
        result = evaluate(read_warnings(args.warnings), truth)
        text = orjson.dumps(result.to_dict(), option=orjson.OPT_INDENT_2).decode() if args.json \
            else render_table(result)
    try:
        print(text, flush=True)
    except BrokenPipeError:         # `fundflow evaluate ... | head` is fine
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


def _from_labels(args: argparse.Namespace) -> str:
    import orjson

    from ..console.queries import Console, rule_figures, render_rule_figures
    from ..settings import load_settings
    from ..sinks.factory import open_store
    from ..sinks.store import StoreError

    if args.days <= 0:
        raise FundflowError(f"--days: expected a positive number, got {args.days}")
    settings = load_settings(args.settings)
    try:
        with open_store(args.store or settings.clickhouse_url, create=False) as store:
            figures = rule_figures(Console(store, rules_dir=args.rules or settings.rules_dir), args.days)
    except StoreError as exc:
        raise FundflowError(f"cannot read the labels: {exc}") from None
    return orjson.dumps(figures, option=orjson.OPT_INDENT_2).decode() if args.json else render_rule_figures(figures)
