"""`fundflow console`: the analyst console (queue, warning pages with the money's graph, triage labels, rule
precision) over the configured warning store."""

from __future__ import annotations

import argparse
import sys

from ..errors import FundflowError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "console", help="serve the analyst console (web pages and a JSON API) over the warning store",
        description="Serve the analyst console on console_host:console_port (127.0.0.1:8070 by default) over the "
                    "store named by clickhouse_url. Users and roles come from console_tokens or "
                    "console_tokens_file; without any the console does not start. An embedded chDB store admits "
                    "one process: while a worker runs on it, let the worker serve the console "
                    "(FUNDFLOW_CONSOLE_IN_WORKER=true) instead (docs/console.md).")
    parser.add_argument("--host", metavar="ADDRESS", help="override console_host (default 127.0.0.1)")
    parser.add_argument("--port", metavar="PORT", type=int, help="override console_port (0: any free port)")
    parser.add_argument("--store", metavar="URL", help="override clickhouse_url from the settings")
    parser.add_argument("--rules", metavar="DIR", help="the rules directory whose texts, cooldowns and load errors "
                                                       "the console shows (default: rules_dir)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..settings import load_settings
    from ..console.server import serve

    settings = load_settings(args.settings)
    if args.port is not None and not 0 <= args.port <= 65535:
        raise FundflowError(f"--port: expected 0-65535, got {args.port}")
    return serve(settings, store_url=args.store, host=args.host, port=args.port, rules_dir=args.rules,
                 out=sys.stdout)
