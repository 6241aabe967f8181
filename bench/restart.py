"""Restart cost against the size of the window: a worker drains a pre-loaded topic, is stopped (SIGTERM, so
its last snapshot covers everything it read), and is started again; the figure is the time from the new
process to `/readyz` answering 200. With snapshots the restart loads one file and replays nothing; the same
restart with snapshots off (the whole window replayed from the log) is measured in the same run as the
baseline.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from .ledgers import LedgerSpec, ledger
from .live import _consumed_at
from .report import Figure, at_most, info
from .stack import Worker, local_stack


@dataclass(frozen=True)
class RestartResult:
    small_events: int
    large_events: int
    small_s: float            # restart to ready, with a snapshot
    large_s: float
    large_full_s: float       # restart to ready, snapshots off: the whole window replayed


def run(*, quick: bool, rules: Path) -> RestartResult:
    small, large = (5_000, 50_000) if quick else (20_000, 300_000)
    small_s = _restart(small, rules, snapshots=True)
    large_s = _restart(large, rules, snapshots=True)
    large_full_s = _restart(large, rules, snapshots=False)
    return RestartResult(small, large, small_s, large_s, large_full_s)


def _restart(events: int, rules: Path, *, snapshots: bool) -> float:
    from stream.offline.produce import produce_file
    from stream.settings import load_settings

    source = ledger(LedgerSpec(edges=events))
    with local_stack(clickhouse=False) as stack:
        worker = Worker(stack, rules, settings={"snapshot_interval": "30s" if snapshots else "0s"})
        report = produce_file(source, load_settings(None, env=worker.env()), limit=events, progress=False)
        produced = sum(report.sent.values())
        try:
            worker.start()
            worker.wait_until(lambda: _consumed_at(worker, produced),
                              f"{produced} consumed events", 900, poll_s=0.1)
            worker.stop()
            started = time.perf_counter()
            worker.start()
            worker.wait_until(worker.ready, "readiness after the restart", 900, poll_s=0.02)
            return time.perf_counter() - started
        finally:
            worker.stop()


def figures(result: RestartResult) -> list[Figure]:
    ratio = result.large_s / result.small_s
    return [
        info(f"restart to ready, {result.small_events:,}-event window (snapshot)", result.small_s, "s"),
        at_most(f"restart to ready, {result.large_events:,}-event window (snapshot)", result.large_s, "s", 10.0),
        at_most("restart cost, large window / small window", ratio, "x", 1.5,
                "flat in the window: the snapshot is loaded, nothing before it is replayed"),
        info(f"restart to ready, {result.large_events:,}-event window, snapshots off (baseline)",
             result.large_full_s, "s", f"the whole window replayed; {result.large_full_s / result.large_s:.1f}x the "
                                       f"snapshot restart"),
    ]
