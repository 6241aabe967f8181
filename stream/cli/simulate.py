"""`fundflow simulate`: write a labelled synthetic ledger (events + truth) for back-tests and the demo."""

from __future__ import annotations

import argparse
from pathlib import Path

from .argtypes import add_ledger_options, share, whole_number
from ..simulate.params import PLANTED_KINDS, SimParams


def register(subparsers: argparse._SubParsersAction) -> None:
    defaults = SimParams()
    parser = subparsers.add_parser(
        "simulate", help="write a labelled synthetic ledger (events .jsonl + truth .json)",
        description="Generate a consumer-credit ledger: ordinary spending, p2p, withdrawals and loans, with "
                    "planted laundering of loan money (rapid cash-out, layering, fan-in/out, scatter-gather, "
                    "gather-scatter, cycles, device bursts) and benign look-alikes, all labelled in the truth "
                    "file. The same seed always gives the same bytes. See docs/simulator.md.")
    parser.add_argument("--out", type=Path, required=True, metavar="EVENTS.jsonl",
                        help="events, one JSON object per line, in event-time order (.gz to compress)")
    parser.add_argument("--truth", type=Path, required=True, metavar="TRUTH.json",
                        help="labels: planted instances and look-alikes (same format as the AMLSim benchmark)")
    add_ledger_options(parser, seed=defaults.seed, days=defaults.days, instances=defaults.instances)
    parser.add_argument("--accounts", type=whole_number, default=defaults.accounts, metavar="N",
                        help=f"ordinary retail accounts (default {defaults.accounts})")
    parser.add_argument("--lookalikes", type=whole_number, default=None, metavar="N",
                        help="benign look-alikes per kind (default: same as --instances)")
    parser.add_argument("--background-per-day", type=whole_number, default=defaults.background_per_day, metavar="N",
                        help=f"ordinary events per day (default {defaults.background_per_day})")
    parser.add_argument("--start", default=defaults.start, metavar="YYYY-MM-DD",
                        help=f"first day, UTC (default {defaults.start})")
    parser.add_argument("--currency", default=defaults.currency, metavar="CODE",
                        help=f"ISO 4217 currency of every amount (default {defaults.currency})")
    parser.add_argument("--kinds", default=",".join(PLANTED_KINDS), metavar="K1,K2",
                        help="typologies to plant, comma-separated (default: all)")
    parser.add_argument("--bad-events", type=whole_number, default=0, metavar="N",
                        help="mix in N malformed events (each refused for a known reason, listed in the truth "
                             "file under bad_events) to exercise the dead-letter path (default 0)")
    parser.add_argument("--evasive", type=share, default=0.0, metavar="SHARE",
                        help="share (0-1) of planted instances in the evasive variant: 4x slower, fees tripled, "
                             "cash-outs split into 3-6 partial withdrawals (default 0)")
    parser.add_argument("--spread", type=share, default=0.0, metavar="S",
                        help="0-1: draw each planted instance's parameters from ranges this wide; at 1 delays "
                             "1-8x, fees up to 30%%, cash-outs of 60-100%% in pieces, layering chains up to 8 "
                             "hops (default 0: the plain typologies; see docs/simulator.md)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..simulate import write_ledger

    kinds = tuple(k.strip() for k in args.kinds.split(",") if k.strip())
    params = SimParams(seed=args.seed, accounts=args.accounts, days=args.days, instances=args.instances,
                       lookalikes=args.lookalikes, background_per_day=args.background_per_day, start=args.start,
                       currency=args.currency, kinds=kinds, bad_events=args.bad_events, evasive=args.evasive,
                       spread=args.spread)
    report = write_ledger(params, args.out, args.truth)
    print(f"wrote {report.events} events to {args.out} and {report.planted} planted instances + "
          f"{report.lookalikes} look-alikes to {args.truth} in {report.seconds:.1f} s "
          f"({report.events_per_second:,.0f} events/s)")
    return 0

