"""`fundflow worker`: the production Faust worker."""

from __future__ import annotations

import argparse
import sys

from ..settings import load_settings


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "worker", help="run the Faust worker (consume events, detect, publish warnings)",
        description="Consume the disbursement and transfer topics, run the detector over the rules in "
                    "rules_dir (when that directory exists, else the pack shipped with fundflow), publish "
                    "warnings to the warnings topic and refused input to the dead-letter topic. Settings come "
                    "from --settings FILE and FUNDFLOW_* environment variables.")
    parser.add_argument("--loglevel", default="info", choices=("debug", "info", "warning", "error"),
                        help="worker log level (default: info)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = load_settings(args.settings)   # SettingsError -> one line, exit 1 (stream.cli.main)
    from ..detection.rulebook import load_rules
    from ..rules.pack import resolve_rules_dir
    from .rulesource import rules_line

    # Resolved once, before the worker starts: it then loads and hot-reloads that directory. Said on stderr
    # because the worker's own log is not set up yet when it loads its rules.
    pack = resolve_rules_dir(settings.rules_dir)
    settings = settings.with_overrides(rules_dir=str(pack.path))
    print(f"fundflow worker: {rules_line(pack.describe(), load_rules(pack.path, window_ms=settings.window))}",
          file=sys.stderr, flush=True)
    if settings.indicators_dir is not None:
        from ..indicators.configured import configured_set
        print(f"fundflow worker: indicators: {settings.indicators_dir}: {configured_set(settings).describe()} "
              f"(reloaded on change)", file=sys.stderr, flush=True)
    from ..worker.runner import run_worker
    return run_worker(settings, loglevel=args.loglevel,
                      on_built=_serve_console if settings.console_in_worker else None)


def _serve_console(worker) -> None:
    """console_in_worker: the console from this process, over the store the worker's sink holds when it is an
    embedded chDB store (which admits one process only; its calls are serialised), else over a connection of its
    own to the same server."""
    import logging

    from ..console.server import serve_store_in_thread
    from ..errors import FundflowError

    from ..sinks.chdb_store import ChdbStore
    from ..sinks.factory import open_store

    if worker.sinks is None:
        raise FundflowError("console_in_worker: this worker has no warning store to serve")
    log = logging.getLogger("stream.console")
    store = worker.sinks.clickhouse.store
    if not isinstance(store, ChdbStore):
        # A server admits many clients, and one clickhouse-driver client must not serve two threads: its own.
        store = open_store(worker.settings.clickhouse_url)
    serve_store_in_thread(worker.settings, store, log=log.warning)
    print(f"fundflow worker: console on http://{worker.settings.console_host}:{worker.settings.console_port}/ "
          f"(console_in_worker)", file=sys.stderr, flush=True)
