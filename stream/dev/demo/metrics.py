"""Following a demo run on the worker's /metrics page: the counters that say how far it got."""

from __future__ import annotations

from dataclasses import dataclass

from ..promtext import Sample, fetch_text, parse_samples, total


@dataclass(frozen=True)
class WorkerProgress:
    """The counters the demo follows, summed over their labels."""

    consumed: int = 0           # events accepted by the detector
    deadlettered: int = 0       # input messages refused
    warnings: int = 0           # warnings raised by the detector
    stored: int = 0             # rows the ClickHouse sink wrote (duplicates included)
    sink_failures: int = 0

    @property
    def handled(self) -> int:
        return self.consumed + self.deadlettered


def progress_from_samples(samples: list[Sample]) -> WorkerProgress:
    return WorkerProgress(
        consumed=int(total(samples, "fundflow_events_consumed_total")),
        deadlettered=int(total(samples, "fundflow_deadlettered_total")),
        warnings=int(total(samples, "fundflow_warnings_total")),
        stored=int(total(samples, "fundflow_sink_deliveries_total", sink="clickhouse")),
        sink_failures=int(total(samples, "fundflow_sink_failures_total", sink="clickhouse")),
    )


def fetch_progress(url: str, timeout_s: float = 2.0) -> WorkerProgress | None:
    """The worker's counters, or None while its web server does not answer yet (or answers half a page)."""
    text = fetch_text(url, timeout_s)
    if text is None:
        return None
    try:
        return progress_from_samples(parse_samples(text))
    except ValueError:
        return None
