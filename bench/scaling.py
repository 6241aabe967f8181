"""Cost per event against the size of the window (docs/architecture.md, invariant 5: it must stay flat).

Each size has its own ledger with the same activity per account (bench.ledgers), so only the number of accounts,
and with it the size of the graph, changes. The cost at a size is the CPU time per event over the last 10% of
that ledger, when the window holds 90-100% of its edges.
"""

from __future__ import annotations

from typing import Mapping

from .offline import OfflineResult
from .report import Figure, at_most, info

TARGET_RATIO = 1.3


def figures(results: Mapping[int, OfflineResult]) -> list[Figure]:
    sizes = sorted(results)
    costs = {size: results[size].cost_us_near(results[size].edges_at_end) for size in sizes}
    rows = [info(f"per-event cost at {_edges(size)} edges", costs[size], "µs CPU",
                 f"{results[size].edges_at_end:,} edges, {results[size].events:,} events") for size in sizes]
    smallest, largest = sizes[0], sizes[-1]
    rows.append(at_most(f"cost at {_edges(largest)} / cost at {_edges(smallest)} edges",
                        costs[largest] / costs[smallest], "x", TARGET_RATIO))
    return rows


def _edges(count: int) -> str:
    return f"{count / 1e6:g}M" if count >= 1_000_000 else f"{count / 1e3:g}k"
