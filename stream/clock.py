"""The wall clock, in one place. Detection never reads it (detected_at in the worker is the Kafka timestamp of
the completing record); the edges (sink insert times, pager minutes) take it as an injectable argument."""

from __future__ import annotations

import time


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000
