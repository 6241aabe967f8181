"""`fundflow produce EVENTS.jsonl`: publish a ledger file to the input topics."""

from __future__ import annotations

import argparse
from pathlib import Path

from .argtypes import events_per_second, positive_whole_number
from ..settings import load_settings


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "produce", help="publish events from a .jsonl(.gz) file to Kafka",
        description="Validate each line like the worker does, send valid events to the disbursements or "
                    "transfers topic keyed by account (the line's bytes unchanged), and report what was "
                    "sent and what was refused.")
    parser.add_argument("file", type=Path, metavar="EVENTS.jsonl", help="one JSON event per line; .gz accepted")
    parser.add_argument("--broker", metavar="URL", default=None,
                        help="Kafka bootstrap (kafka://HOST:PORT); overrides the broker_url setting")
    parser.add_argument("--rate", type=events_per_second, default=None, metavar="N",
                        help="send at most N events per second (default and 0: as fast as possible)")
    parser.add_argument("--limit", type=positive_whole_number, default=None, metavar="N",
                        help="stop after sending N events")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..offline.produce import produce_file

    settings = load_settings(args.settings)
    if args.broker:
        settings = settings.with_overrides(broker_url=args.broker)
    report = produce_file(args.file, settings, rate=args.rate, limit=args.limit,
                          progress=not args.no_progress)
    print(report.render())
    return 0

