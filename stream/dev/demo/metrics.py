"""Following a demo run on the worker's /metrics page: the counters that say how far it got."""

from __future__ import annotations

from dataclasses import dataclass

from ..promtext import Sample, fetch_text, parse_samples, total, value


@dataclass(frozen=True)
class WorkerProgress:
    """The counters the demo follows, summed over their labels."""

    consumed: int = 0           # events accepted by the detector
    deadlettered: int = 0       # input messages refused
    warnings: int = 0           # warnings raised by the detector
    stored: int = 0             # rows the ClickHouse sink wrote (duplicates included)
    sink_failures: int = 0
    paging: bool = False        # the worker has a pager (its page exports the pager's families)
    pages_decided: int = 0      # warnings the pager agent read and decided on
    pages_held: int = 0         # of those, held by storm control for their minute's summary page
    pages_queued: int = 0       # pages waiting to be sent

    @property
    def handled(self) -> int:
        return self.consumed + self.deadlettered

    @property
    def pages_settled(self) -> bool:
        """Every warning raised has reached the pager's decision, and no page waits to be sent (held ones wait for
        their minute by design)."""
        return not self.paging or (self.pages_decided >= self.warnings and self.pages_queued == 0)


def progress_from_samples(samples: list[Sample]) -> WorkerProgress:
    return WorkerProgress(
        consumed=int(total(samples, "fundflow_events_consumed_total")),
        deadlettered=int(total(samples, "fundflow_deadlettered_total")),
        warnings=int(total(samples, "fundflow_warnings_total")),
        stored=int(total(samples, "fundflow_sink_deliveries_total", sink="clickhouse")),
        sink_failures=int(total(samples, "fundflow_sink_failures_total", sink="clickhouse")),
        paging=value(samples, "fundflow_pager_queued") is not None,
        pages_decided=int(total(samples, "fundflow_pager_decisions_total")),
        pages_held=int(total(samples, "fundflow_pager_decisions_total", outcome="held")),
        pages_queued=int(total(samples, "fundflow_pager_queued")),
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
