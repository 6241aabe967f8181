"""`python -m bench [--quick] [--only NAMES]`: run the benchmarks and print each figure beside its target.

offline   fundflow replay's path over a simulated ledger whose window holds 1M edges: events/s, peak RSS
scaling   CPU cost per event with 100k, 1M and 3M edges in the window
memory    RSS per windowed edge (from the largest scaling run)
live      the Faust worker consuming a pre-loaded topic, beside a bare aiokafka consumer in the same run
latency   produced -> warning queryable in ClickHouse and -> webhook call, at steady produced rates
restart   restart to /readyz with a 20k- and a 300k-event window (snapshots), beside a full rebuild
peer      fundflow against Snap ML's GraphFeaturePreprocessor on the AMLSim ledger, per-event rate, same run

Ledgers are generated once into FUNDFLOW_BENCH_DIR (default .fundflow/bench) and reused. --quick shrinks every
size about tenfold (about 1.5 minutes once the ledgers exist); its figures are indicative, not the targets' scale.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from . import memory, offline, scaling
from .ledgers import DEFAULT_DIR, LedgerSpec, ledger
from .report import Figure, render

ALL = ("offline", "scaling", "memory", "peer", "live", "latency", "restart")
FULL_SIZES = (100_000, 1_000_000, 3_000_000)
QUICK_SIZES = (10_000, 100_000, 300_000)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="about ten times smaller, about 1.5 minutes")
    parser.add_argument("--only", default=",".join(ALL), help=f"comma-separated subset of {','.join(ALL)}")
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="where generated ledgers are kept")
    parser.add_argument("--rules", type=Path, default=Path("rules"), help="rule pack (default: rules/)")
    args = parser.parse_args(argv)
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(chosen) - set(ALL))
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(ALL)}")

    started = time.perf_counter()
    figures: list[Figure] = []
    sizes = QUICK_SIZES if args.quick else FULL_SIZES
    replays: dict[int, offline.OfflineResult] = {}

    def replay(size: int) -> offline.OfflineResult:
        if size not in replays:
            path = ledger(LedgerSpec(edges=size), args.dir)
            _say(f"replaying {path.name}")
            replays[size] = offline.measure(path, rules=args.rules)
        return replays[size]

    if "offline" in chosen:
        figures += offline.figures(replay(sizes[1]))
    if "scaling" in chosen:
        figures += scaling.figures({size: replay(size) for size in sizes})
    if "memory" in chosen:
        figures += memory.figures(replay(sizes[-1] if "scaling" in chosen else sizes[1]))
    if "peer" in chosen:
        from . import peer
        _say("peer: fundflow and Snap ML on AMLSim")
        figures += peer.figures(peer.run(args.dir, rules=args.rules, rounds=1 if args.quick else peer.ROUNDS))
    if "live" in chosen:
        from . import live
        _say("live: worker vs bare consumer")
        figures += live.figures(live.run(quick=args.quick, rules=args.rules))
    if "latency" in chosen:
        from . import latency
        _say("latency: steady produced rates")
        figures += latency.figures(latency.run(quick=args.quick, rules=args.rules))

    if "restart" in chosen:
        from . import restart
        _say("restart: time to ready against the window")
        figures += restart.figures(restart.run(quick=args.quick, rules=args.rules))

    print()
    render(figures)
    print(f"\n({'quick' if args.quick else 'full'} run, {time.perf_counter() - started:,.0f} s)")
    return 0


def _say(text: str) -> None:
    print(f"  {text}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
