"""Equivalence of partitioned detection: `python -m bench.partitions [--quick]` (`make partitions`).

`fundflow replay --partitions N` for N = 1, 2, 3, 8 over simulated ledgers (several seeds, one evasive) and, when
present, the AMLSim ledger with its override. Each run is a fresh process; the warnings files are compared by
SHA-256 (they must be identical for every N), and each run's CPU time is shown against N = 1 of the same ledger
in the same call (what the hops cost). Not a timed test: it prints, and exits 1 only if some N differs.

Then what limits scaling past a few workers, from the same detector with 16 and 64 partitions (in process):
messages per input event, hops that cross from one partition to another, the busiest partition against the
mean (skew), and the share of all messages that the hottest keys take.
"""

from __future__ import annotations

import argparse
import hashlib
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
AMLSIM = REPO.parent / "shared" / "data" / "amlsim-12k"
COUNTS = (1, 2, 3, 8)


def fundflow(*args: str) -> float:
    """Run `fundflow ARGS` to completion; its CPU seconds."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, "-m", "stream.cli", *args], check=True, cwd=REPO,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.partitions", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one small simulated ledger, N = 1 and 3")
    args = parser.parse_args(argv)
    counts = (1, 3) if args.quick else COUNTS
    work = Path(tempfile.mkdtemp(prefix="fundflow-partitions-"))
    ledgers: list[tuple[str, Path, tuple[str, ...]]] = []
    simulated = [("seed 7", ("--seed", "7"))] if args.quick else [
        ("seed 7", ("--seed", "7")), ("seed 8", ("--seed", "8")), ("seed 9", ("--seed", "9")),
        ("seed 11 evasive 0.5", ("--seed", "11", "--evasive", "0.5"))]
    for name, options in simulated:
        path = work / f"{name.replace(' ', '-')}.jsonl"
        fundflow("simulate", *options, "--out", str(path), "--truth", str(path.with_suffix(".truth.json")))
        ledgers.append((f"simulator {name}", path, ()))
    if not args.quick and (AMLSIM / "events.jsonl.gz").is_file():
        ledgers.append(("AMLSim 12k, balanced override", AMLSIM / "events.jsonl.gz",
                        ("--overrides", "bench/overrides/amlsim.override.yaml", "--window", "30d")))
    differ = 0
    print(f"{'ledger':34} {'N':>2} {'warnings':>8} {'sha256':>14} {'CPU s':>7} {'vs N=1':>7}  same as N=1")
    for name, path, options in ledgers:
        first_digest, first_cpu = None, None
        for count in counts:
            out = work / f"{path.stem}.p{count}.jsonl"
            started = time.perf_counter()
            cpu = fundflow("replay", str(path), "--no-progress", "--partitions", str(count), "--out", str(out),
                           *options)
            data = out.read_bytes()
            digest = hashlib.sha256(data).hexdigest()
            if first_digest is None:
                first_digest, first_cpu = digest, cpu
            same = digest == first_digest
            differ += not same
            warnings = data.count(b"\n")
            print(f"{name:34} {count:>2} {warnings:>8,} {digest[:12]:>14} {cpu:>7.1f} "
                  f"{cpu / first_cpu:>6.2f}x  {'yes' if same else 'NO'}"
                  f"   ({time.perf_counter() - started:.0f} s wall)", flush=True)
    print(f"\ntarget: identical warnings for every N; {'MET' if not differ else f'NOT MET ({differ} runs differ)'}")
    traffic(ledgers[0][1], (16,) if args.quick else (16, 64))
    return 1 if differ else 0


def traffic(path: Path, counts: tuple[int, ...]) -> None:
    from stream.detection.detector import Detector, Traffic
    from stream.errors import EventError
    from stream.model.events import parse_event
    from stream.detection.rulebook import load_rules

    events = [parse_event(line) for line in path.read_bytes().splitlines() if line.strip()]
    ruleset = load_rules(REPO / "rules")
    print(f"\nhop traffic, {path.name} ({len(events):,} events), default pack:")
    print(f"{'partitions':>10} {'messages/event':>15} {'crossing/event':>15} {'busiest/mean':>13} "
          f"{'top key':>8} {'top 10 keys':>12}  hottest key")
    for count in counts:
        detector = Detector(ruleset, partitions=count)
        detector.traffic = seen = Traffic(count)
        for event in events:
            try:
                detector.process(event)
            except EventError:
                continue
        handled = sum(seen.handled)
        hottest = seen.by_key.most_common(10)
        top = [n for _, n in hottest]
        print(f"{count:>10} {handled / seen.inputs:>15.2f} {seen.crossing / seen.inputs:>15.2f} "
              f"{max(seen.handled) / (handled / count):>12.2f}x {top[0] / handled:>8.2%} {sum(top) / handled:>12.2%}  "
              f"{hottest[0][0][:40]}")


if __name__ == "__main__":
    sys.exit(main())
