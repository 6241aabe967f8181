"""The worker's web pages on Faust's web server: /healthz, /readyz and /metrics, and the consumer lag they show.

The page bodies are pure (`health`, `metrics`); this module only routes them and reads the consumer's
offsets from Faust's monitor.
"""

from __future__ import annotations

from typing import Any, Sequence

import faust

from .health import HealthTracker, PageResponse, healthz_page, readyz_page
from .metrics import CONTENT_TYPE, FundflowMetrics


def add_pages(app: faust.App, health: HealthTracker, metrics: FundflowMetrics) -> None:
    def respond(view: Any, page: PageResponse) -> Any:
        # bytes + an explicit header: the exposition format wants its full content type, parameters included
        return view.bytes(page.body.encode("utf-8"), status=page.status, headers={"Content-Type": page.content_type})

    async def healthz(self: Any, request: Any) -> Any:
        return respond(self, healthz_page(health.snapshot()))

    async def readyz(self: Any, request: Any) -> Any:
        return respond(self, readyz_page(health.snapshot()))

    async def metrics_view(self: Any, request: Any) -> Any:
        return self.bytes(metrics.render(), status=200, headers={"Content-Type": CONTENT_TYPE})

    app.page("/healthz", name="fundflow_healthz")(healthz)
    app.page("/readyz", name="fundflow_readyz")(readyz)
    app.page("/metrics", name="fundflow_metrics")(metrics_view)

    async def mark_started() -> None:
        health.mark_started()

    app.task(mark_started)


def input_lags(app: faust.App, topics: Sequence[str]) -> dict[tuple[str, int], int]:
    """Lag per assigned input partition: end offset seen by the consumer minus the next offset to read.

    A partition the consumer has fetched nothing from yet has no known end offset and counts as lag 0;
    that is an empty partition once the first fetch has run.
    """
    try:
        assignment = app.consumer.assignment()
    except Exception:  # noqa: BLE001 - no consumer yet (not started, or between rebalances)
        return {}
    ends = app.monitor.tp_end_offsets if app.monitor is not None else {}
    reads = app.monitor.tp_read_offsets if app.monitor is not None else {}
    lags = {}
    for tp in assignment:
        if tp.topic not in topics:
            continue
        end = ends.get(tp)
        position = reads.get(tp, -1) + 1
        lags[(tp.topic, tp.partition)] = max(0, end - position) if end is not None else 0
    return lags
