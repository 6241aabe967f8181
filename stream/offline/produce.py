"""Publish a recorded or synthetic ledger (.jsonl / .jsonl.gz) to the input topics.

Each line is checked with the same `parse_event` the worker uses, so a file that produces cleanly will not
feed the dead-letter topic; refused lines are counted by reason with their line numbers instead of being
sent. Accepted lines are sent byte for byte, keyed by account, so the worker sees exactly the file.
"""

from __future__ import annotations

import gzip
from zlib import error as zlib_error
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Callable, Iterator

from ..errors import CONNECT_TIMEOUT_S, EventError, FundflowError, not_answering
from ..model.events import Disbursement, event_key, parse_event
from ..settings import Settings

MAX_LINES_LISTED = 5


class ProduceError(FundflowError):
    """The input file cannot be read or the broker cannot be reached."""


@dataclass
class ProduceReport:
    """What was sent where, and what was refused (by reason, with the first few line numbers)."""

    sent: Counter = field(default_factory=Counter)                      # topic -> count
    refused: Counter = field(default_factory=Counter)                   # reason -> count
    refused_lines: dict[str, list[int]] = field(default_factory=dict)   # reason -> first line numbers
    refused_examples: dict[str, str] = field(default_factory=dict)      # reason -> first error message

    def refuse(self, reason: str, line_no: int, message: str) -> None:
        self.refused[reason] += 1
        lines = self.refused_lines.setdefault(reason, [])
        if len(lines) < MAX_LINES_LISTED:
            lines.append(line_no)
        self.refused_examples.setdefault(reason, message)

    def render(self) -> str:
        out = [f"sent {self.sent[topic]} to {topic}" for topic in sorted(self.sent)] or ["sent nothing"]
        total = sum(self.refused.values())
        out.append(f"refused {total} line{'s' if total != 1 else ''}")
        for reason, count in self.refused.most_common():
            lines = ", ".join(map(str, self.refused_lines[reason]))
            more = ", ..." if count > len(self.refused_lines[reason]) else ""
            out.append(f"  {reason}: {count} (lines {lines}{more}) e.g. {self.refused_examples[reason]}")
        return "\n".join(out)


def open_lines(path: Path) -> IO[bytes]:
    """A .jsonl or .jsonl.gz file, as binary lines (the bytes sent are the bytes in the file)."""
    try:
        if path.suffix == ".gz":
            return gzip.open(path, "rb")
        return open(path, "rb")
    except OSError as exc:
        raise ProduceError(f"{path}: cannot read ({exc.strerror})") from None


def iter_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """(line number, line without its newline), skipping blank lines."""
    read = 0
    with open_lines(path) as handle:
        try:
            for line_no, line in enumerate(handle, start=1):
                read = line_no
                line = line.rstrip(b"\r\n")
                if line.strip():
                    yield line_no, line
        except (OSError, EOFError, gzip.BadGzipFile, zlib_error) as exc:
            raise UnreadableLedger(f"{path}: cannot read past line {read} ({exc})", read) from None


class UnreadableLedger(ProduceError):
    """The file stopped being readable after `line` (a truncated gzip stream, an I/O error)."""

    def __init__(self, message: str, line: int) -> None:
        super().__init__(message)
        self.line = line


class Throttle:
    """Paces sends to at most `rate` per second; the clock and sleep are injectable for tests."""

    def __init__(self, rate: float | None, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.interval = 1.0 / rate if rate else 0.0
        self._clock, self._sleep = clock, sleep
        self._next = None

    def wait(self) -> None:
        if not self.interval:
            return
        now = self._clock()
        if self._next is None or self._next < now:
            self._next = now
        if self._next > now:
            self._sleep(self._next - now)
        self._next += self.interval


def topic_for(event, settings: Settings) -> str:
    return settings.disbursements_topic if isinstance(event, Disbursement) else settings.transfers_topic


def produce_file(path: Path, settings: Settings, *, rate: float | None = None, limit: int | None = None,
                 progress: bool = True, producer=None) -> ProduceReport:
    """Send every valid line of `path` to its topic; returns the report. Flushes before returning."""
    path = Path(path)
    if not path.is_file():
        raise ProduceError(f"{path}: no such file")
    from kafka import KafkaProducer
    from kafka.errors import KafkaError

    own_producer = producer is None
    if own_producer:
        try:
            producer = KafkaProducer(bootstrap_servers=settings.broker_bootstrap, acks="all", linger_ms=20,
                                     client_id="fundflow-produce", bootstrap_timeout_ms=CONNECT_TIMEOUT_S * 1000)
        except KafkaError as exc:
            raise ProduceError(not_answering("broker", settings.broker_url, exc)) from None
    report = ProduceReport()
    throttle = Throttle(rate)
    failures: list[BaseException] = []
    bar = _progress_bar(path, limit, progress)
    watermark: int | None = None   # newest event time so far: refuses what the worker would call absurd
    try:
        for line_no, line in iter_lines(path):
            if limit is not None and sum(report.sent.values()) >= limit:
                break
            try:
                event = parse_event(line, watermark=watermark)
            except EventError as exc:
                report.refuse(exc.reason, line_no, str(exc))
                continue
            watermark = event.ts if watermark is None else max(watermark, event.ts)
            throttle.wait()
            topic = topic_for(event, settings)
            future = producer.send(topic, key=event_key(event).encode(), value=line)
            future.add_errback(failures.append)
            report.sent[topic] += 1
            bar.update(1)
        producer.flush()
    except UnreadableLedger as exc:
        producer.flush()           # what was sent before the break is delivered, and said so
        sent = sum(report.sent.values())
        refused = sum(report.refused.values())
        raise ProduceError(f"{exc}; {sent} events of lines 1-{exc.line} were sent and acknowledged, {refused} "
                           f"refused; fix the file and produce again from line {exc.line + 1}") from None
    except KafkaError as exc:
        raise ProduceError(f"sending to {settings.broker_url} failed ({exc})") from None
    finally:
        bar.close()
        if own_producer:
            producer.close()
    if failures:
        raise ProduceError(f"{len(failures)} message(s) were not acknowledged by {settings.broker_url}: "
                           f"{failures[0]}")
    return report


def _progress_bar(path: Path, limit: int | None, enabled: bool):
    from tqdm import tqdm
    return tqdm(total=limit, desc=f"producing {path.name}", unit="ev", file=sys.stderr, disable=not enabled,
                dynamic_ncols=True)
