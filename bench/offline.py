"""Offline detector throughput, run in a fresh process: `python -m bench.offline LEDGER.jsonl`.

The same path as `fundflow replay` (its detector, collector tuning and `replay_lines`, warnings written out as
JSON lines), with the default rule pack. Every `--chunk` lines it samples CPU time, wall time, the edges in the window
and RSS, so one run yields throughput, the per-event cost at each graph size, peak RSS and RSS per windowed edge.
CPU time of this process is the headline figure: it is what one core spends, whatever else the machine is doing.
Prints one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from .report import Figure, at_least, info

PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes() -> int:
    with open("/proc/self/statm", "rb") as statm:
        return int(statm.read().split()[1]) * PAGE


@dataclass
class Sample:
    lines: int
    cpu_s: float
    wall_s: float
    edges: int
    rss: int


@dataclass
class OfflineResult:
    ledger: str
    events: int
    warnings: int
    edges_at_end: int
    cpu_s: float
    wall_s: float
    rss_start: int              # after imports, rules and an empty detector
    rss_end: int
    peak_rss: int
    gc_s: float                 # wall time spent in the cyclic garbage collector
    samples: list[Sample] = field(default_factory=list)

    @property
    def events_per_cpu_s(self) -> float:
        return self.events / self.cpu_s

    @property
    def bytes_per_edge(self) -> float:
        return (self.rss_end - self.rss_start) / max(self.edges_at_end, 1)

    def cost_us_near(self, edges: int) -> float:
        """CPU µs per event over the chunks that ended with about `edges` edges in the window (the last 10% of
        the growth up to that size)."""
        chosen = [(a, b) for a, b in zip(self.samples, self.samples[1:]) if 0.9 * edges <= b.edges <= 1.02 * edges]
        if not chosen:
            raise ValueError(f"no chunk of {self.ledger} ended with about {edges} edges")
        lines = sum(b.lines - a.lines for a, b in chosen)
        return 1e6 * sum(b.cpu_s - a.cpu_s for a, b in chosen) / lines


def run(ledger: Path, *, rules: Path, window_ms: int, lateness_ms: int, chunk: int, out: Path | None,
        overrides: tuple[Path, ...] = ()) -> OfflineResult:
    from stream.offline.replay import replay_detector, replay_lines, tuned_collector
    from stream.detection.rulebook import load_rules

    ruleset = load_rules([rules], overrides, window_ms=window_ms)
    detector = replay_detector(ruleset, window_ms=window_ms, lateness_ms=lateness_ms)
    sink = open(out, "wb") if out is not None else open(os.devnull, "wb")
    gc.collect()
    gc_timer = _GcTimer()
    gc.callbacks.append(gc_timer)
    samples: list[Sample] = []
    rss_start = rss_bytes()
    cpu0, wall0 = time.process_time(), time.perf_counter()

    def sample(lines: int) -> None:
        samples.append(Sample(lines, time.process_time() - cpu0, time.perf_counter() - wall0,
                              detector.edge_count, rss_bytes()))

    def sampled(lines: Iterable[bytes]) -> Iterator[bytes]:
        sample(0)
        count = 0
        for count, line in enumerate(lines, start=1):
            yield line
            if count % chunk == 0:
                sample(count)
        sample(count)

    with open(ledger, "rb") as handle, sink, tuned_collector():
        report = replay_lines(sampled(handle), detector, lambda w: sink.write(w.to_json() + b"\n"))
    end = samples[-1]
    return OfflineResult(ledger=str(ledger), events=report.events, warnings=report.warnings,
                         edges_at_end=detector.edge_count, cpu_s=end.cpu_s, wall_s=end.wall_s,
                         rss_start=rss_start, rss_end=end.rss,
                         peak_rss=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, gc_s=gc_timer.total,
                         samples=samples)


class _GcTimer:
    """A gc callback adding up the time of every collection."""

    def __init__(self) -> None:
        self.total = 0.0
        self._started = 0.0

    def __call__(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.total += time.perf_counter() - self._started


def measure(ledger: Path, *, rules: Path = Path("rules"), chunk: int = 10_000, overrides: tuple[Path, ...] = (),
            window_ms: int | None = None) -> OfflineResult:
    """Run this module on `ledger` in a fresh interpreter (clean RSS, nothing shared with the caller)."""
    options = [arg for path in overrides for arg in ("--overrides", str(path))]
    if window_ms is not None:
        options += ["--window-ms", str(window_ms)]
    completed = subprocess.run([sys.executable, "-m", "bench.offline", str(ledger), "--rules", str(rules),
                                "--chunk", str(chunk), *options], check=True, stdout=subprocess.PIPE)
    return from_json(completed.stdout.decode().strip().splitlines()[-1])


def figures(result: OfflineResult) -> list[Figure]:
    edges = f"{result.edges_at_end:,} edges in the window"
    return [
        at_least("offline replay, one core", result.events_per_cpu_s, "events/s", 60_000,
                 f"{result.events:,} events, CPU time; {edges}"),
        info("offline replay, wall clock", result.events / result.wall_s, "events/s",
             "shared machine: wall time includes waiting for the CPU"),
        info("offline replay, peak RSS", result.peak_rss / 2**20, "MiB", edges),
        info("offline replay, time in gc", 100 * result.gc_s / result.wall_s, "% of wall"),
    ]


def from_json(text: str) -> OfflineResult:
    data = json.loads(text)
    data["samples"] = [Sample(**s) for s in data["samples"]]
    return OfflineResult(**data)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.offline", description=__doc__.splitlines()[0])
    parser.add_argument("ledger", type=Path)
    parser.add_argument("--rules", type=Path, default=Path("rules"))
    parser.add_argument("--overrides", type=Path, action="append", default=[], help="an override file (repeatable)")
    parser.add_argument("--window-ms", type=int, default=72 * 3_600_000)
    parser.add_argument("--lateness-ms", type=int, default=5 * 60_000)
    parser.add_argument("--chunk", type=int, default=10_000, help="lines between samples")
    parser.add_argument("--out", type=Path, default=None, help="write the warnings here (default: discard)")
    args = parser.parse_args(argv)
    result = run(args.ledger, rules=args.rules, window_ms=args.window_ms, lateness_ms=args.lateness_ms,
                 chunk=args.chunk, out=args.out, overrides=tuple(args.overrides))
    json.dump(asdict(result), sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
