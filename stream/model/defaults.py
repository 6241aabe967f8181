"""Defaults that several layers share (settings, the detector, rule tests, the command line), defined once."""

from __future__ import annotations

from .timefmt import parse_duration_ms

WINDOW = "72h"                          # event-time span of the rolling graph
WINDOW_MS = parse_duration_ms(WINDOW)
ALLOWED_LATENESS = "5m"                 # how late an event may be and still count as on time
ALLOWED_LATENESS_MS = parse_duration_ms(ALLOWED_LATENESS)
TRACER_POLICIES = ("lifo", "fifo", "proportional")   # which money an outflow spends first
TRACER_POLICY = "lifo"
