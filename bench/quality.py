"""Detection quality in one command: recall per typology and precision of the rule pack on the project's own
simulated ledgers and on the public AMLSim benchmark, side by side (docs/benchmarks.md shows the result).

Every number comes from the real command-line tools, run exactly as an analyst would run them:

    fundflow simulate ... -> fundflow replay ... -> fundflow evaluate ...     (the default pack)
    fundflow replay AMLSim --overrides bench/overrides/amlsim*.override.yaml --window 30d -> fundflow evaluate

so what this script prints is what those commands print. Each scenario is printed with the commands used and
the `fundflow evaluate` table, then one summary table of all scenarios.

    .venv/bin/python bench/quality.py                         # everything (about 1-2 min)
    .venv/bin/python bench/quality.py --only sim-seed7        # one scenario
    .venv/bin/python bench/quality.py --json results.json     # also keep the numbers
    .venv/bin/python bench/quality.py --sweep                 # recall per typology over seeds x spreads (~5 min)
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FUNDFLOW = str(Path(sys.executable).with_name("fundflow"))
DEFAULT_AMLSIM = REPO.parent / "shared" / "data" / "amlsim-12k"
OVERRIDES = REPO / "bench" / "overrides"
TYPOLOGY_ORDER = ("rapid_cashout", "layering", "fan_in", "fan_out", "scatter_gather", "gather_scatter", "cycle",
                  "device_burst", "identity_ring", "account_takeover", "bipartite", "stack", "random")
# The sweep: every typology planted 10 times per ledger, parameters drawn from ranges that widen with the spread.
SWEEP_SEEDS = (7, 11, 23)
SWEEP_SPREADS = (0.0, 0.5, 1.0)
RECALL_TARGET = PRECISION_TARGET = 0.95


@dataclass(frozen=True)
class Scenario:
    """One ledger and one way of running the pack over it."""

    name: str
    title: str
    simulate: tuple[str, ...] | None     # `fundflow simulate` options; None: an existing ledger (AMLSim)
    replay: tuple[str, ...] = ()         # extra `fundflow replay` options


SCENARIOS = (
    Scenario("sim-seed7", "simulator, seed 7 (defaults: 2000 accounts, 7 days, 5 instances per typology)",
             ("--seed", "7")),
    Scenario("sim-seed7-x20", "simulator, seed 7, 20 instances per typology and look-alike kind, 5000 accounts",
             ("--seed", "7", "--instances", "20", "--accounts", "5000")),
    Scenario("sim-seed7-evasive", "simulator, seed 7, 30% evasive instances", ("--seed", "7", "--evasive", "0.3")),
    Scenario("amlsim-balanced", "AMLSim 12k, balanced override", None,
             ("--overrides", "bench/overrides/amlsim.override.yaml", "--window", "30d")),
    Scenario("amlsim-recall", "AMLSim 12k, high-recall override", None,
             ("--overrides", "bench/overrides/amlsim-recall.override.yaml", "--window", "30d")),
)


SWEEP = tuple(
    Scenario(f"spread{spread:g}-seed{seed}", f"simulator, seed {seed}, --spread {spread:g}, 10 instances per typology",
             ("--seed", str(seed), "--spread", f"{spread:g}", "--instances", "10", "--accounts", "5000"))
    for spread in SWEEP_SPREADS for seed in SWEEP_SEEDS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--amlsim", type=Path, default=DEFAULT_AMLSIM,
                        help="directory with the benchmark's events.jsonl.gz and truth.json")
    parser.add_argument("--only", action="append", choices=[s.name for s in SCENARIOS + SWEEP],
                        help="run only this scenario (repeatable)")
    parser.add_argument("--sweep", action="store_true",
                        help=f"run the spread sweep instead (seeds {', '.join(map(str, SWEEP_SEEDS))} x spreads "
                             f"{', '.join(f'{s:g}' for s in SWEEP_SPREADS)}) and print recall per typology and spread")
    parser.add_argument("--workdir", type=Path, default=None, help="keep ledgers and warnings here (default: temp)")
    parser.add_argument("--json", type=Path, default=None, help="write every scenario's evaluation here")
    args = parser.parse_args(argv)

    pool = SWEEP if args.sweep else SCENARIOS + SWEEP
    chosen = [s for s in pool if (s.name in args.only if args.only else s in (SWEEP if args.sweep else SCENARIOS))]
    with tempfile.TemporaryDirectory(prefix="fundflow-quality-") as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        results = {}
        for scenario in chosen:
            if scenario.simulate is None and not (args.amlsim / "events.jsonl.gz").is_file():
                print(f"## {scenario.title}: skipped, no {args.amlsim / 'events.jsonl.gz'}\n", flush=True)
                continue
            results[scenario.name] = run_scenario(scenario, workdir, args.amlsim)
    print(summary_table(chosen, results))
    if args.sweep:
        print()
        print(sweep_table(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


def run_scenario(scenario: Scenario, workdir: Path, amlsim: Path) -> dict:
    print(f"## {scenario.title}\n", flush=True)
    if scenario.simulate is not None:
        events = workdir / f"{scenario.name}.jsonl"
        truth = workdir / f"{scenario.name}.truth.json"
        run([FUNDFLOW, "simulate", "--out", str(events), "--truth", str(truth), *scenario.simulate])
    else:
        events, truth = amlsim / "events.jsonl.gz", amlsim / "truth.json"
    warnings = workdir / f"{scenario.name}.warnings.jsonl"
    started = time.monotonic()
    run([FUNDFLOW, "replay", str(events), *scenario.replay, "--out", str(warnings), "--no-progress"])
    replay_s = time.monotonic() - started
    table = run([FUNDFLOW, "evaluate", str(warnings), str(truth)], capture=True)
    print(table, flush=True)
    result = json.loads(run([FUNDFLOW, "evaluate", str(warnings), str(truth), "--json"], capture=True, show=False))
    result["replay_seconds"] = round(replay_s, 1)
    print(f"(replay took {replay_s:.1f} s)\n", flush=True)
    return result


def run(command: list[str], *, capture: bool = False, show: bool = True) -> str:
    if show:
        print("$ " + " ".join(shlex.quote(_short(part)) for part in command), flush=True)
    done = subprocess.run(command, cwd=REPO, text=True, stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
                          stderr=subprocess.PIPE)
    if done.returncode != 0:
        raise SystemExit(f"failed ({done.returncode}): {' '.join(command)}\n{done.stderr}")
    return done.stdout if capture else ""


def _short(part: str) -> str:
    """Paths inside the repository are shown relative to it, the fundflow script by its name."""
    if part == FUNDFLOW:
        return "fundflow"
    try:
        return str(Path(part).relative_to(REPO))
    except ValueError:
        return part


def summary_table(scenarios: list[Scenario], results: dict) -> str:
    """Recall (detected by any rule / by a rule of the same kind) per typology, then precision, per scenario."""
    shown = [s for s in scenarios if s.name in results]
    if not shown:
        return "no results"
    kinds = sorted({kind for s in shown for kind in results[s.name]["recall"]["by_kind"]},
                   key=lambda k: (TYPOLOGY_ORDER.index(k) if k in TYPOLOGY_ORDER else len(TYPOLOGY_ORDER), k))
    header = ["typology", *(s.name for s in shown)]
    rows = []
    for kind in kinds:
        row = [kind]
        for s in shown:
            stats = results[s.name]["recall"]["by_kind"].get(kind)
            row.append(_cell(stats) if stats else "")
        rows.append(row)
    rows.append(["ALL", *(_cell(results[s.name]["recall"]["overall"]) for s in shown)])
    rows.append(["warnings", *(str(results[s.name]["warnings"]["total"]) for s in shown)])
    rows.append(["precision", *(_pct(results[s.name]["warnings"]["precision"]) for s in shown)])
    rows.append(["on look-alikes", *(str(results[s.name]["warnings"]["lookalike"]) for s in shown)])
    rows.append(["replay s", *(str(results[s.name]["replay_seconds"]) for s in shown)])
    lines = ["## Summary: recall (any rule / same-kind rule) and precision", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def sweep_table(results: dict) -> str:
    """Recall per typology at each spread, summed over the seeds, against the 95% target; then precision."""
    by_spread: dict[float, list[dict]] = {}
    for scenario in SWEEP:
        if scenario.name in results:
            by_spread.setdefault(float(scenario.simulate[3]), []).append(results[scenario.name])
    if not by_spread:
        return "no sweep results"
    spreads = sorted(by_spread)
    kinds = [k for k in TYPOLOGY_ORDER if any(k in r["recall"]["by_kind"] for rs in by_spread.values() for r in rs)]
    lines = [f"## Sweep: recall per typology (any rule), seeds {', '.join(map(str, SWEEP_SEEDS))} summed; "
             f"target >= {RECALL_TARGET:.0%} recall at >= {PRECISION_TARGET:.0%} precision", "",
             "| typology | " + " | ".join(f"spread {s:g}" for s in spreads) + " |", "|---|" + "---|" * len(spreads)]
    for kind in kinds:
        cells = []
        for spread in spreads:
            found = sum(r["recall"]["by_kind"].get(kind, {}).get("detected", 0) for r in by_spread[spread])
            total = sum(r["recall"]["by_kind"].get(kind, {}).get("instances", 0) for r in by_spread[spread])
            mark = "" if total and found / total >= RECALL_TARGET else " MISSED"
            cells.append(f"{found}/{total} ({_pct(found / total if total else None)}){mark}")
        lines.append(f"| {kind} | " + " | ".join(cells) + " |")
    for label, key in (("warnings", "total"), ("on look-alikes", "lookalike"), ("on background", "background")):
        lines.append(f"| {label} | " + " | ".join(str(sum(r["warnings"][key] for r in by_spread[s]))
                                                  for s in spreads) + " |")
    cells = []
    for spread in spreads:
        total = sum(r["warnings"]["total"] for r in by_spread[spread])
        planted = sum(r["warnings"]["planted"] for r in by_spread[spread])
        share = planted / total if total else None
        cells.append(_pct(share) + ("" if share is not None and share >= PRECISION_TARGET else " MISSED"))
    lines.append("| **precision** | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _cell(stats: dict) -> str:
    return f"{stats['detected']}/{stats['instances']} ({_pct(stats['recall'])}) / {_pct(stats['recall_same_kind'])}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


if __name__ == "__main__":
    sys.exit(main())
