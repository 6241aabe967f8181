"""Simulated ledgers sized for a benchmark, generated once with `fundflow simulate` and cached by their parameters.

A ledger meant to fill a window of N edges keeps the same activity per account whatever N is (about 3 ordinary
events per account per day), so a bigger graph means more accounts, not busier ones: the neighbourhood of an
event stays alike and only the size of the whole graph changes (what docs/architecture.md, invariant 5 is about).
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

EVENTS_PER_ACCOUNT_DAY = 3
TRANSFER_SHARE = 0.97           # of simulated events: the rest are disbursements, which are not edges
DEFAULT_DIR = Path(os.environ.get("FUNDFLOW_BENCH_DIR", ".fundflow/bench"))


@dataclass(frozen=True)
class LedgerSpec:
    edges: int                  # edges the window should hold at the end of the ledger
    days: int = 3               # every event of a 3-day ledger stays inside the default 72h window
    seed: int = 11
    instances: int = 5          # planted instances per typology (the simulator's default)

    @property
    def per_day(self) -> int:
        return int(self.edges / TRANSFER_SHARE / self.days) + 1

    @property
    def accounts(self) -> int:
        return max(self.per_day // EVENTS_PER_ACCOUNT_DAY, 100)

    @property
    def name(self) -> str:
        return f"ledger-{self.edges}e-{self.days}d-s{self.seed}-i{self.instances}.jsonl"


def ledger(spec: LedgerSpec, directory: Path = DEFAULT_DIR, log=sys.stderr) -> Path:
    """The ledger file for `spec`, generated if it is not cached yet (the simulator is deterministic by seed)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / spec.name
    if path.exists():
        return path
    partial = path.with_suffix(".partial.jsonl")
    print(f"  generating {path} ({spec.per_day * spec.days:,} events, {spec.accounts:,} accounts)", file=log)
    subprocess.run([str(Path(sys.executable).with_name("fundflow")), "simulate", "--out", str(partial),
                    "--truth", str(directory / (spec.name + ".truth.json")), "--seed", str(spec.seed),
                    "--accounts", str(spec.accounts), "--days", str(spec.days),
                    "--background-per-day", str(spec.per_day), "--instances", str(spec.instances)], check=True, stdout=subprocess.DEVNULL)
    partial.rename(path)
    return path
