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
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
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
    # A time split: the share of the ledger's time span that is the training part. The scenario is then scored
    # on the rest only: instances with a transaction there, warnings raised there (`split_truth`).
    split: float | None = None


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
    Scenario("amlsim-split-balanced", "AMLSim 12k, balanced override, test part of the 60/40 time split", None,
             ("--overrides", "bench/overrides/amlsim.override.yaml", "--window", "30d"), split=0.6),
    Scenario("amlsim-split", "AMLSim 12k, override tuned on the first 60% of time, scored on the last 40%", None,
             ("--overrides", "bench/overrides/amlsim-split.override.yaml", "--window", "30d"), split=0.6),
)


def sweep(seeds: tuple[int, ...]) -> tuple[Scenario, ...]:
    return tuple(
        Scenario(f"spread{spread:g}-seed{seed}", f"simulator, seed {seed}, --spread {spread:g}, 10 instances per "
                 f"typology", ("--seed", str(seed), "--spread", f"{spread:g}", "--instances", "10", "--accounts", "5000"))
        for spread in SWEEP_SPREADS for seed in seeds)


SWEEP = sweep(SWEEP_SEEDS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--amlsim", type=Path, default=DEFAULT_AMLSIM,
                        help="directory with the benchmark's events.jsonl.gz and truth.json")
    parser.add_argument("--only", action="append", choices=[s.name for s in SCENARIOS + SWEEP],
                        help="run only this scenario (repeatable)")
    parser.add_argument("--sweep", action="store_true",
                        help=f"run the spread sweep instead (seeds {', '.join(map(str, SWEEP_SEEDS))} x spreads "
                             f"{', '.join(f'{s:g}' for s in SWEEP_SPREADS)}) and print recall per typology and spread")
    parser.add_argument("--seeds", default=None, metavar="N,N",
                        help="the sweep's seeds (default: the ones the pack was tuned on; others hold it out)")
    parser.add_argument("--workdir", type=Path, default=None, help="keep ledgers and warnings here (default: temp)")
    parser.add_argument("--json", type=Path, default=None, help="write every scenario's evaluation here")
    args = parser.parse_args(argv)
    sweeping = sweep(tuple(int(seed) for seed in args.seeds.split(","))) if args.seeds else SWEEP

    pool = sweeping if args.sweep else SCENARIOS + sweeping
    chosen = [s for s in pool if (s.name in args.only if args.only else s in (sweeping if args.sweep else SCENARIOS))]
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
        print(sweep_table(results, sweeping))
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
    if scenario.split is not None:
        for part in ("train", "test"):
            part_truth, part_warnings = split_truth(events, truth, warnings, scenario.split, part, workdir)
            print(f"### {part} part ({'first' if part == 'train' else 'last'} "
                  f"{scenario.split if part == 'train' else 1 - scenario.split:.0%} of the time span)", flush=True)
            print(run([FUNDFLOW, "evaluate", str(part_warnings), str(part_truth)], capture=True), flush=True)
        truth, warnings = part_truth, part_warnings      # the scenario's figures are the test part's
    table = run([FUNDFLOW, "evaluate", str(warnings), str(truth)], capture=True)
    print(table, flush=True)
    result = json.loads(run([FUNDFLOW, "evaluate", str(warnings), str(truth), "--json"], capture=True, show=False))
    result["replay_seconds"] = round(replay_s, 1)
    print(f"(replay took {replay_s:.1f} s)\n", flush=True)
    return result


def split_truth(events: Path, truth: Path, warnings: Path, share: float, part: str, workdir: Path) -> tuple[Path, Path]:
    """The truth and warnings of one part of a time split at `share` of the ledger's span: for `test`, the
    instances with a transaction at or after the split and the warnings raised then (an instance that straddles
    the split is a test instance: its end is still to be caught); for `train`, instances wholly before it and
    warnings raised before it."""
    import gzip

    opener = gzip.open if events.suffix == ".gz" else open
    times: dict[str, int] = {}
    with opener(events, "rt") as lines:
        for line in lines:
            event = json.loads(line)
            times[event["event_id"]] = epoch_ms(event["ts"])
    cut = split_cut(times.values(), share)
    labels = json.loads(truth.read_text())

    def belongs(instance: dict) -> bool:
        stamps = [times[txn] for txn in instance["txn_ids"] if txn in times]
        if not stamps:
            return False
        return max(stamps) >= cut if part == "test" else max(stamps) < cut

    kept = {**labels, "planted": [i for i in labels["planted"] if belongs(i)],
            "lookalikes": [i for i in labels.get("lookalikes", []) if belongs(i)]}
    part_truth = workdir / f"{truth.stem}.{part}.json"
    part_truth.write_text(json.dumps(kept))
    part_warnings = workdir / f"{warnings.stem}.{part}.jsonl"
    with warnings.open() as source, part_warnings.open("w") as out:
        for line in source:
            if line.strip() and (epoch_ms(json.loads(line)["event_ts"]) >= cut) == (part == "test"):
                out.write(line)
    return part_truth, part_warnings


def split_cut(times: Collection[int], share: float) -> int:
    """The instant (epoch ms) of a time split at `share` of the span from the first to the last of `times`."""
    first, last = min(times), max(times)
    return first + int(share * (last - first))


def epoch_ms(text: str) -> int:
    """An RFC 3339 timestamp as epoch milliseconds."""
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


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


def sweep_table(results: dict, scenarios: tuple[Scenario, ...]) -> str:
    """Recall per typology at each spread, summed over the seeds, against the 95% target; then precision."""
    by_spread: dict[float, list[dict]] = {}
    for scenario in scenarios:
        if scenario.name in results:
            by_spread.setdefault(float(scenario.simulate[3]), []).append(results[scenario.name])
    if not by_spread:
        return "no sweep results"
    spreads = sorted(by_spread)
    kinds = [k for k in TYPOLOGY_ORDER if any(k in r["recall"]["by_kind"] for rs in by_spread.values() for r in rs)]
    seeds = sorted({int(s.simulate[1]) for s in scenarios if s.name in results})
    lines = [f"## Sweep: recall per typology (any rule), seeds {', '.join(map(str, seeds))} summed; "
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
