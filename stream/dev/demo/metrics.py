"""Reading the worker's /metrics page: just enough of the Prometheus text format to follow a demo run."""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Mapping

_SAMPLE = re.compile(r'^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>.*)\})?\s+(?P<value>\S+)(?:\s+\d+)?$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True)
class Sample:
    name: str
    labels: Mapping[str, str]
    value: float


def parse_samples(text: str) -> list[Sample]:
    """Samples of an exposition-format page; comments and lines that are not samples are skipped."""
    samples = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        if not match:
            continue
        try:
            value = float(match["value"])
        except ValueError:
            continue
        labels = {k: _unescape(v) for k, v in _LABEL.findall(match["labels"] or "")}
        samples.append(Sample(match["name"], labels, value))
    return samples


def _unescape(value: str) -> str:
    return value.replace("\\n", "\n").replace('\\"', '"').replace("\\\\", "\\")


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
    def total(name: str, **where: str) -> int:
        return int(sum(s.value for s in samples
                       if s.name == name and all(s.labels.get(k) == v for k, v in where.items())))

    return WorkerProgress(
        consumed=total("fundflow_events_consumed_total"),
        deadlettered=total("fundflow_deadlettered_total"),
        warnings=total("fundflow_warnings_total"),
        stored=total("fundflow_sink_deliveries_total", sink="clickhouse"),
        sink_failures=total("fundflow_sink_failures_total", sink="clickhouse"),
    )


def fetch_progress(url: str, timeout_s: float = 2.0) -> WorkerProgress | None:
    """The worker's counters, or None while its web server does not answer yet."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            text = response.read().decode("utf-8", errors="replace")
    except (urllib.error.URLError, OSError):
        return None
    return progress_from_samples(parse_samples(text))
