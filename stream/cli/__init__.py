"""The `fundflow` console script: one sub-command per module in this package.

Each command module exposes `register(subparsers)` which adds its parser and sets `func` to a callable
taking the parsed arguments and returning an exit code. The modules import what their command runs inside
the command, so `fundflow --help` does not load the worker or the detector.
"""

from __future__ import annotations

import argparse
import os
import sys

from ..errors import FundflowError
from ..model.version import fundflow_version
from . import (console, demo, evaluate, evidence, indicators, labels, produce, replay, replay_diff, rules, simulate,
               store, warnings, worker)

COMMANDS = (worker, produce, replay, replay_diff, rules, simulate, evaluate, demo, warnings, store, evidence, indicators,
            console, labels)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fundflow",
        description="Streaming fund-flow monitor: early warnings of rapid cash-out and layering.",
    )
    parser.add_argument("--settings", metavar="FILE", default=None,
                        help="YAML settings file; FUNDFLOW_* environment variables override it (may also be "
                             "given after the command)")
    parser.add_argument("--version", action="version", version=f"fundflow {fundflow_version()}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        command.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(_settings_first(sys.argv[1:] if argv is None else argv))
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


def _settings_first(argv: list[str]) -> list[str]:
    """`fundflow replay X --settings F` and `fundflow --settings F replay X` mean the same: the global option is
    moved in front of the command wherever it was written (no command has an option of that name)."""
    rest, front = [], []
    items = iter(argv)
    for item in items:
        if item == "--":
            rest += [item, *items]
            break
        if item == "--settings":
            front += [item, next(items, "")]
        elif item.startswith("--settings="):
            front.append(item)
        else:
            rest.append(item)
    return front + rest




if __name__ == "__main__":
    sys.exit(main())
