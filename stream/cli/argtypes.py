"""Argument types and option groups shared by several commands, so a flag means the same in each of them.

An argument type turns one command-line word into a value or raises `argparse.ArgumentTypeError`, which
argparse reports as "argument --flag: <message>" with exit status 2; the message says what was expected and
what arrived.
"""

from __future__ import annotations

import argparse

from ..model.timefmt import parse_duration_ms


def whole_number(text: str) -> int:
    """A count: 0, 1, 2, ..."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}")
    return value


def positive_whole_number(text: str) -> int:
    """A count that cannot be zero (days of a ledger, events to send)."""
    value = whole_number(text)
    if value == 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


def events_per_second(text: str) -> float | None:
    """A pace in events per second; 0 means as fast as possible (None), as everywhere in fundflow."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of events per second, got {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected 0 (as fast as possible) or a positive rate, got {text!r}")
    return value or None


def positive_number(text: str) -> float:
    """A finite rate or limit above zero."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def share(text: str) -> float:
    """A fraction between 0 and 1, both included."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a share between 0 and 1, got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a share between 0 and 1, got {text!r}")
    return value


def duration_ms(text: str) -> int:
    """A duration like 30m or 72h, in milliseconds; the message of `parse_duration_ms` says what is wrong."""
    try:
        return parse_duration_ms(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_ledger_options(parser: argparse.ArgumentParser, *, seed: int, days: int, instances: int,
                       instances_help: str = "planted instances per typology") -> None:
    """The simulator options `simulate` and `demo` both take, so the two commands shape a ledger alike.

    Each command passes its own defaults (`SimParams` for simulate, `DemoOptions` for the demo).
    """
    parser.add_argument("--seed", type=whole_number, default=seed, metavar="N",
                        help=f"random seed of the ledger (default {seed})")
    parser.add_argument("--days", type=positive_whole_number, default=days, metavar="N",
                        help=f"days of event time (default {days})")
    parser.add_argument("--instances", type=whole_number, default=instances, metavar="N",
                        help=f"{instances_help} (default {instances})")
