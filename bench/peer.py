"""fundflow against the peer a user would pick for graph-pattern features, IBM Snap ML's GraphFeaturePreprocessor,
on the public AMLSim ledger, in the same run: `python -m bench --only peer` (or `python -m bench.peer`).

fundflow: `fundflow replay`'s path (bench.offline, in a fresh process) with bench/overrides/amlsim.override.yaml
and a 30-day window, CPU time, everything included (reading and parsing each JSON line, the graph, the tracer,
every rule, the warnings written). The peer: bench/snapml_stream.py, one transfer per `transform` call on one
thread, run under an interpreter that has snapml: this one when it has it (the optional extra `bench`:
`pip install '.[bench]'`), else the one FUNDFLOW_SNAPML_PYTHON names. Without either the peer's figures are
shown as not measured and fundflow's alone are reported. Both sides run `ROUNDS` times, alternating, and the
figures are the medians (the ratio: the median of the rounds' ratios).
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

from . import offline
from .report import Figure, at_least, info, missing

REPO = Path(__file__).resolve().parents[1]
AMLSIM = REPO.parent / "shared" / "data" / "amlsim-12k" / "events.jsonl.gz"
OVERRIDE = REPO / "bench" / "overrides" / "amlsim.override.yaml"
WINDOW_MS = 30 * 86_400_000
ROUNDS = 3
TARGET_RATIO = 2.0


def snapml_python() -> str | None:
    """An interpreter with snapml installed, or None."""
    named = os.environ.get("FUNDFLOW_SNAPML_PYTHON")
    if named:
        return named
    return sys.executable if importlib.util.find_spec("snapml") is not None else None


def plain_ledger(directory: Path) -> Path:
    """AMLSim decompressed once into the benchmark directory: both sides then read the same plain JSON lines, and
    neither is timed decompressing."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "amlsim-12k.jsonl"
    if not path.exists():
        partial = path.with_suffix(".partial")
        with gzip.open(AMLSIM, "rb") as source, open(partial, "wb") as target:
            shutil.copyfileobj(source, target)
        partial.rename(path)
    return path


def run(directory: Path, *, rules: Path, rounds: int = ROUNDS) -> dict:
    """`rounds` alternating runs of both sides (fundflow, the peer, fundflow, ...), one fresh process each."""
    if not AMLSIM.is_file():
        return {"missing": f"no AMLSim ledger at {AMLSIM}"}
    ledger = plain_ledger(directory)
    python = snapml_python()
    results = []
    for _ in range(rounds):
        fundflow = offline.measure(ledger, rules=rules, overrides=(OVERRIDE,), window_ms=WINDOW_MS)
        result = {"fundflow": {"events": fundflow.events, "cpu_s": fundflow.cpu_s, "warnings": fundflow.warnings}}
        results.append(result)
        if python is None:
            result["snapml"] = {"missing": "snapml is not installed (pip install '.[bench]', or set "
                                           "FUNDFLOW_SNAPML_PYTHON to an interpreter that has it)"}
            continue
        completed = subprocess.run([python, str(REPO / "bench" / "snapml_stream.py"), str(ledger)],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if completed.returncode != 0:
            result["snapml"] = {"missing": f"the peer failed: {completed.stderr.strip().splitlines()[-1:]}"}
            continue
        result["snapml"] = json.loads(completed.stdout.strip().splitlines()[-1])
    return {"rounds": results}


def _rate(side: dict) -> float:
    return side["events"] / side["cpu_s"]


def figures(result: dict) -> list[Figure]:
    """The median round's figures. On a shared machine a whole run's speed moves by a third within an hour, and
    the two sides of one round run a minute apart: the median of alternating rounds is steadier than any one."""
    if "missing" in result:
        return [missing("AMLSim: fundflow / Snap ML per-event rate", f">= {TARGET_RATIO}", result["missing"])]
    rounds = result["rounds"]
    ours = [_rate(r["fundflow"]) for r in rounds]
    first = rounds[0]["fundflow"]
    shown = [info("AMLSim replay, fundflow, one core", statistics.median(ours), "events/s",
                  f"{first['events']:,} events, CPU time, all included; {first['warnings']} warnings"
                  + (f"; median of {len(rounds)} runs" if len(rounds) > 1 else ""))]
    peers = [r["snapml"] for r in rounds]
    failed = next((peer for peer in peers if "missing" in peer), None)
    if failed is not None:
        return shown + [missing("AMLSim: fundflow / Snap ML per-event rate", f">= {TARGET_RATIO}", failed["missing"])]
    theirs = [_rate(peer) for peer in peers]
    ratios = [mine / peer for mine, peer in zip(ours, theirs)]
    spread = ", ".join(f"{ratio:.2f}" for ratio in ratios)
    return shown + [
        info("AMLSim streamed, Snap ML GraphFeaturePreprocessor", statistics.median(theirs), "events/s",
             f"{peers[0]['events']:,} transfers one at a time, 1 thread, CPU time of transform only"
             + (f"; median of {len(rounds)} runs" if len(rounds) > 1 else "")),
        at_least("AMLSim: fundflow / Snap ML per-event rate", statistics.median(ratios), "x", TARGET_RATIO,
                 f"median of {len(rounds)} alternating rounds, each side of a round one after the other: {spread}"
                 if len(rounds) > 1 else "same run"),
    ]


def main(argv: list[str] | None = None) -> int:
    from .ledgers import DEFAULT_DIR
    from .report import render

    render(figures(run(DEFAULT_DIR, rules=Path("rules"))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
