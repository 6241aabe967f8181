"""`fundflow demo`: a local broker, local ClickHouse storage, a labelled ledger, the real worker, a summary."""

from __future__ import annotations

import argparse
from pathlib import Path

from .argtypes import add_ledger_options, positive_whole_number, whole_number


def register(subparsers: argparse._SubParsersAction) -> None:
    from ..dev.demo.run import DemoOptions

    defaults = DemoOptions()
    parser = subparsers.add_parser(
        "demo", help="run everything locally: broker, store, webhook, synthetic ledger, worker, summary",
        description="Start a throw-away tansu broker, the warning store (embedded chDB, or a local ClickHouse "
                    "server with --store server) and a local pager webhook; simulate a labelled ledger; "
                    "stream it through Kafka into `fundflow worker`; then print events processed, warnings by "
                    "rule, the most severe warnings with their evidence, recall and precision against the "
                    "planted truth, and how to query the stored warnings. Child processes are stopped on exit "
                    "and on Ctrl-C.")
    parser.add_argument("--events-per-day", type=whole_number, default=defaults.events_per_day, metavar="N",
                        help=f"ordinary background events per day (default {defaults.events_per_day})")
    add_ledger_options(parser, seed=defaults.seed, days=defaults.days, instances=defaults.instances,
                       instances_help="planted instances (and look-alikes) per typology")
    parser.add_argument("--workdir", type=Path, default=defaults.workdir, metavar="DIR",
                        help=f"where the ledger, truth, logs and the chDB store go; emptied at every run "
                             f"(default {defaults.workdir})")
    parser.add_argument("--store", choices=("chdb", "server"), default=defaults.store,
                        help="warning store: embedded chDB in WORKDIR/chdb, or a local ClickHouse server "
                             f"(default {defaults.store})")
    parser.add_argument("--keep", action="store_true",
                        help="keep the broker (and ClickHouse server) running after the summary, until Ctrl-C")
    parser.add_argument("--console", action="store_true",
                        help="after the summary, serve the analyst console on the demo's store until Ctrl-C and "
                             "print its address and two demo tokens (analyst, supervisor)")
    parser.add_argument("--rate", type=whole_number, default=int(defaults.rate or 0), metavar="N",
                        help=f"events per second sent to Kafka, like a live ledger; 0 sends as fast as possible "
                             f"(default {int(defaults.rate or 0)})")
    parser.add_argument("--timeout", type=positive_whole_number, default=None, metavar="SECONDS",
                        help="give up when the worker has not finished by then (default: scaled to the ledger)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..dev.demo.run import DemoOptions, run_demo

    options = DemoOptions(events_per_day=args.events_per_day, days=args.days, instances=args.instances,
                          seed=args.seed, workdir=args.workdir, keep=args.keep, store=args.store,
                          rate=float(args.rate) or None, progress=not args.no_progress, timeout_s=args.timeout,
                          settings_file=args.settings,
                          after_summary=(lambda url: _console(url, args.settings)) if args.console else None)
    return run_demo(options)


def _console(store_url: str, settings_file: str | None) -> None:
    """The console on the demo's store (the worker has stopped, so an embedded store is free) until Ctrl-C. Demo
    tokens are made up unless the settings name users."""
    import secrets
    import sys

    from ..console.server import serve
    from ..settings import load_settings

    settings = load_settings(settings_file)
    if not (settings.console_tokens or settings.console_tokens_file):
        analyst, supervisor = secrets.token_hex(16), secrets.token_hex(16)
        settings = settings.with_overrides(console_tokens=f"analyst:analyst:{analyst},"
                                                          f"supervisor:supervisor:{supervisor}")
        print(f"console tokens: analyst {analyst}  supervisor {supervisor}  (log in with one of them)", flush=True)
    try:
        serve(settings, store_url=store_url, out=sys.stdout)
    except KeyboardInterrupt:
        pass

