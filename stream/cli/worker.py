"""`fundflow worker`: the production Faust worker."""

from __future__ import annotations

import argparse

from ..settings import load_settings


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "worker", help="run the Faust worker (consume events, detect, publish warnings)",
        description="Consume the disbursement and transfer topics, run the detector over the rules in "
                    "rules_dir, publish warnings to the warnings topic and refused input to the dead-letter "
                    "topic. Settings come from --settings FILE and FUNDFLOW_* environment variables.")
    parser.add_argument("--loglevel", default="info", choices=("debug", "info", "warning", "error"),
                        help="worker log level (default: info)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = load_settings(args.settings)   # SettingsError -> one line, exit 1 (stream.cli.main)
    from ..worker.runner import run_worker
    return run_worker(settings, loglevel=args.loglevel)
