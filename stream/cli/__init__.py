"""The `fundflow` console script: one sub-command per module in this package.

Each command module exposes `register(subparsers)` which adds its parser and sets `func` to a callable
taking the parsed arguments and returning an exit code.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from ..errors import FundflowError

COMMAND_MODULES = ("worker", "produce", "replay", "rules", "simulate", "evaluate", "demo", "warnings", "store")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fundflow",
        description="Streaming fund-flow monitor: early warnings of rapid cash-out and layering.",
    )
    parser.add_argument("--settings", metavar="FILE", default=None,
                        help="YAML settings file; FUNDFLOW_* environment variables override it")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"{__name__}.{name}":
                continue
            raise
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except FundflowError as exc:
        print(f"fundflow {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"fundflow {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `fundflow replay ... | head`: the reader left; not an error of ours. Silence the flush at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
