"""Memory per windowed edge: RSS growth of a replay, from an empty detector to the full window, per edge held.

It covers everything the window keeps per edge (NetworkX adjacency and attributes, expiry queue, tracer lots,
node records), as the process sees it, allocator slack included.
"""

from __future__ import annotations

from .offline import OfflineResult
from .report import Figure, at_most

TARGET_BYTES = 866             # the figure before the hot path was reworked for speed: no more per edge


def figures(result: OfflineResult) -> list[Figure]:
    return [at_most("RSS per windowed edge", result.bytes_per_edge, "bytes", TARGET_BYTES,
                    f"RSS {result.rss_start / 2**20:,.0f} -> {result.rss_end / 2**20:,.0f} MiB for "
                    f"{result.edges_at_end:,} edges")]
