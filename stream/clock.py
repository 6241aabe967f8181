"""The wall clock, in one place. Detection never reads it; the edges (detected_at in the worker, sink insert
times, pager minutes) take it as an injectable argument so tests can pass their own."""

from __future__ import annotations

import time


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000
