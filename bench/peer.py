"""fundflow against the peer a user would pick for graph-pattern features, IBM Snap ML's GraphFeaturePreprocessor,
on the public AMLSim ledger, in the same run: `python -m bench --only peer` (or `python -m bench.peer`).

fundflow: `fundflow replay`'s path (bench.offline, in a fresh process) with bench/overrides/amlsim.override.yaml
and a 30-day window, CPU time, everything included (reading and parsing each JSON line, the graph, the tracer,
every rule, the warnings written). The peer: bench/snapml_stream.py, one transfer per `transform` call on one
thread, run under an interpreter that has snapml: this one when it has it (the optional extra `bench`:
`pip install '.[bench]'`), else the one FUNDFLOW_SNAPML_PYTHON names. Without either the peer's figures are
shown as not measured and fundflow's alone are reported.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from . import offline
from .report import Figure, at_least, info, missing

REPO = Path(__file__).resolve().parents[1]
AMLSIM = REPO.parent / "shared" / "data" / "amlsim-12k" / "events.jsonl.gz"
OVERRIDE = REPO / "bench" / "overrides" / "amlsim.override.yaml"
WINDOW_MS = 30 * 86_400_000
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


def run(directory: Path, *, rules: Path) -> dict:
    if not AMLSIM.is_file():
        return {"missing": f"no AMLSim ledger at {AMLSIM}"}
    ledger = plain_ledger(directory)
    fundflow = offline.measure(ledger, rules=rules, overrides=(OVERRIDE,), window_ms=WINDOW_MS)
    result = {"fundflow": {"events": fundflow.events, "cpu_s": fundflow.cpu_s, "warnings": fundflow.warnings}}
    python = snapml_python()
    if python is None:
        result["snapml"] = {"missing": "snapml is not installed (pip install '.[bench]', or set "
                                       "FUNDFLOW_SNAPML_PYTHON to an interpreter that has it)"}
        return result
    completed = subprocess.run([python, str(REPO / "bench" / "snapml_stream.py"), str(ledger)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if completed.returncode != 0:
        result["snapml"] = {"missing": f"the peer failed: {completed.stderr.strip().splitlines()[-1:]}"}
        return result
    result["snapml"] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


def figures(result: dict) -> list[Figure]:
    if "missing" in result:
        return [missing("AMLSim: fundflow / Snap ML per-event rate", f">= {TARGET_RATIO}", result["missing"])]
    ours = result["fundflow"]
    rate = ours["events"] / ours["cpu_s"]
    shown = [info("AMLSim replay, fundflow, one core", rate, "events/s",
                  f"{ours['events']:,} events, CPU time, all included; {ours['warnings']} warnings")]
    peer = result["snapml"]
    if "missing" in peer:
        return shown + [missing("AMLSim: fundflow / Snap ML per-event rate", f">= {TARGET_RATIO}", peer["missing"])]
    peer_rate = peer["events"] / peer["cpu_s"]
    return shown + [
        info("AMLSim streamed, Snap ML GraphFeaturePreprocessor", peer_rate, "events/s",
             f"{peer['events']:,} transfers one at a time, 1 thread, CPU time of transform only"),
        at_least("AMLSim: fundflow / Snap ML per-event rate", rate / peer_rate, "x", TARGET_RATIO, "same run"),
    ]


def main(argv: list[str] | None = None) -> int:
    from .ledgers import DEFAULT_DIR
    from .report import render

    render(figures(run(DEFAULT_DIR, rules=Path("rules"))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
