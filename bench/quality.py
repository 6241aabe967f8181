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
                  "device_burst", "bipartite", "stack", "random")


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--amlsim", type=Path, default=DEFAULT_AMLSIM,
                        help="directory with the benchmark's events.jsonl.gz and truth.json")
    parser.add_argument("--only", action="append", choices=[s.name for s in SCENARIOS],
                        help="run only this scenario (repeatable)")
    parser.add_argument("--workdir", type=Path, default=None, help="keep ledgers and warnings here (default: temp)")
    parser.add_argument("--json", type=Path, default=None, help="write every scenario's evaluation here")
    args = parser.parse_args(argv)

    chosen = [s for s in SCENARIOS if not args.only or s.name in args.only]
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


def _cell(stats: dict) -> str:
    return f"{stats['detected']}/{stats['instances']} ({_pct(stats['recall'])}) / {_pct(stats['recall_same_kind'])}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


if __name__ == "__main__":
    sys.exit(main())
