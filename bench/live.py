"""Live throughput: the real worker (`fundflow worker`, a subprocess) draining a pre-loaded topic, beside the same
detector run offline over the same events, and a bare aiokafka consume + JSON-decode loop, in the same run.

The worker's rate counts from the first event it reports consumed (`fundflow_events_consumed_total`, i.e. parsed,
aligned and detected, its warnings published to the outbox) to the last, so start-up and the group join are left
out; the other loops are timed the same way, from their first record to their last. All read one partition per
input topic over loopback from the local broker; sinks (ClickHouse server, no pager) run inside the worker as
deployed. The offline loop is `fundflow replay`'s detector (`replay_detector` under `tuned_collector`) fed by a
plain consumer, the events in event-time order as the worker's aligner releases them (so both raise the same
warnings): what the worker does, without Faust, publishing or sinks. The target is the worker's
rate over that one; the machine is shared, so only ratios within one run mean anything.
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import orjson

from .ledgers import LedgerSpec, ledger
from .report import Figure, at_least, info
from .stack import Worker, local_stack

TARGET_RATIO = 0.7          # the worker's rate over the offline detector's on the same events, same run
ROUNDS = 3                  # full run; --quick runs one


@dataclass(frozen=True)
class LiveResult:
    events: int
    worker_rate: float
    bare_rate: float
    detecting_rate: float       # the bare consumer running parse + replay's detector per record (no Faust)
    warnings: int
    offline_warnings: int       # what that offline loop raised (its input order is the topics', not aligned)


def run(*, quick: bool, rules: Path, profile: Path | None = None, rounds: int | None = None) -> list[LiveResult]:
    """`rounds` rounds (ROUNDS, or one with `quick`), one after the other. `profile`: also sample the worker of
    the first round with py-spy while it drains the topic (collapsed stacks to that file)."""
    count = rounds if rounds is not None else (1 if quick else ROUNDS)
    return [_round(quick=quick, rules=rules, profile=profile if index == 0 else None) for index in range(count)]


def _round(*, quick: bool, rules: Path, profile: Path | None) -> LiveResult:
    from stream.offline.produce import produce_file
    from stream.settings import load_settings

    events = 30_000 if quick else 150_000
    source = ledger(LedgerSpec(edges=100_000 if quick else 1_000_000))
    with local_stack(clickhouse=True) as stack:
        worker = Worker(stack, rules)
        settings = load_settings(None, env=worker.env())
        report = produce_file(source, settings, limit=events, progress=False)
        produced = sum(report.sent.values())
        topics = [settings.disbursements_topic, settings.transfers_topic]
        bare_rate, _ = asyncio.run(_bare_rate(stack.broker.bootstrap, topics, produced))
        detecting_rate, offline_warnings = asyncio.run(_bare_rate(stack.broker.bootstrap, topics, produced, rules))
        try:
            worker.start()
            first = worker.wait_until(lambda: _consumed_at(worker), "first consumed event", 90, poll_s=0.02)
            profiler = _profile(worker, profile) if profile else None
            last = worker.wait_until(lambda: _consumed_at(worker, produced), f"{produced} consumed events",
                                     600, poll_s=0.02)
            # The last events' warnings are counted just after the events themselves (after their publish
            # call): read the count once it has stopped moving.
            warnings = int(settled(lambda: worker.total("fundflow_warnings_total")))
            if profiler is not None:
                profiler.wait()
        finally:
            worker.stop()
    (t0, c0), (t1, c1) = first, last
    return LiveResult(events=produced, worker_rate=(c1 - c0) / (t1 - t0), bare_rate=bare_rate,
                      detecting_rate=detecting_rate, warnings=warnings, offline_warnings=offline_warnings)


def settled(read, *, pause_s: float = 0.5, timeout_s: float = 10.0, sleep=time.sleep) -> float:
    """`read()` once two reads `pause_s` apart agree (or the last read at `timeout_s`)."""
    value, waited = read(), 0.0
    while waited < timeout_s:
        sleep(pause_s)
        waited += pause_s
        again = read()
        if again == value:
            return value
        value = again
    return value


def _profile(worker: Worker, out: Path) -> subprocess.Popen:
    py_spy = Path(sys.executable).with_name("py-spy")
    return subprocess.Popen([str(py_spy), "record", "--pid", str(worker.process.pid), "--rate", "200",
                             "--duration", "10", "--format", "raw", "--output", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _consumed_at(worker: Worker, at_least_count: int = 1) -> tuple[float, float] | None:
    count = worker.total("fundflow_events_consumed_total")
    return (time.perf_counter(), count) if count >= at_least_count else None


async def _bare_rate(bootstrap: str, topics: list[str], expected: int, rules: Path | None = None
                     ) -> tuple[float, int]:
    """(records/s, warnings) of a plain consumer (no group, from the start) that decodes every value as JSON;
    with `rules`, that parses every value, then runs replay's detector on the events in event-time order (the
    order the worker's aligner releases them in, arrival order between equal times), with replay's collector
    tuning: the worker's work without Faust, and the same warnings."""
    if rules is None:
        elapsed = await _consume(bootstrap, topics, expected, orjson.loads)
        return expected / elapsed, 0
    from stream.model.events import parse_event
    from stream.offline.replay import replay_detector, tuned_collector
    from stream.detection.rulebook import load_rules

    window, lateness = 72 * 3_600_000, 5 * 60_000
    detector = replay_detector(load_rules([rules], window_ms=window), window_ms=window, lateness_ms=lateness)
    events: list = []
    warnings = 0
    with tuned_collector():
        elapsed = await _consume(bootstrap, topics, expected, lambda value: events.append(parse_event(value)))
        started = time.perf_counter()
        events.sort(key=lambda event: event.ts)          # stable: arrival order between equal times
        for event in events:
            warnings += len(detector.process(event))
        elapsed += time.perf_counter() - started
    return expected / elapsed, warnings


async def _consume(bootstrap: str, topics: list[str], expected: int, handle) -> float:
    """Seconds from the first record fetched to the last handled."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                auto_offset_reset="earliest", max_partition_fetch_bytes=4 * 2**20)
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, 0) for topic in topics])
        seen, started = 0, None
        while seen < expected:
            batches = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            for records in batches.values():
                if started is None:
                    started = time.perf_counter()
                for record in records:
                    handle(record.value)
                seen += len(records)
        return time.perf_counter() - started
    finally:
        await consumer.stop()


def figures(results: list[LiveResult]) -> list[Figure]:
    """The round with the median ratio; with several rounds, every round's ratio beside it."""
    ratios = [result.worker_rate / result.detecting_rate for result in results]
    median = statistics.median_low(ratios)
    result = results[ratios.index(median)]
    rounds = (f"the median of {len(results)} rounds, each on a fresh stack: "
              + ", ".join(f"{ratio:.2f}" for ratio in ratios)) if len(results) > 1 else "same run"
    return [
        info("live worker throughput", result.worker_rate, "events/s",
             f"{result.events:,} pre-loaded events, {result.warnings} warnings; end to end, wall clock"),
        info("offline detector, same events", result.detecting_rate, "events/s",
             f"replay's detector and gc tuning fed by a bare consumer, {result.offline_warnings} warnings "
             f"(events in event-time order, nothing published)"),
        at_least("live worker / offline detector", median, "x", TARGET_RATIO, rounds),
        info("bare aiokafka consume + JSON decode", result.bare_rate, "events/s", "same topic, same run"),
    ]
