"""Reading a worker's /metrics page, for the demo, the benchmarks and the tests: prometheus_client's own parser
of the exposition format, and the few questions they ask of it."""

from __future__ import annotations

import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Mapping

from prometheus_client.parser import text_string_to_metric_families


@dataclass(frozen=True)
class Sample:
    name: str
    labels: Mapping[str, str]
    value: float


def parse_samples(text: str) -> list[Sample]:
    """Every sample of an exposition page (histogram buckets, sums and counts included)."""
    return [Sample(sample.name, dict(sample.labels), float(sample.value))
            for family in text_string_to_metric_families(text) for sample in family.samples]


def value(samples: list[Sample], name: str, **labels: str) -> float | None:
    """The first sample named `name` whose labels include `labels`, or None when there is none."""
    for sample in samples:
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
            return sample.value
    return None


def total(samples: list[Sample], name: str, **labels: str) -> float:
    """The sum over every sample named `name` whose labels include `labels` (0 when there is none)."""
    return sum(sample.value for sample in samples
               if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()))


def fetch_text(url: str, timeout_s: float = 2.0) -> str | None:
    """The page's text, or None while the web server does not answer (starting, stopped)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return response.read().decode("utf-8", errors="replace")
    except (urllib.error.URLError, OSError):
        return None
