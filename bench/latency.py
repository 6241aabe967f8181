"""Detection latency at steady produced rates: from producing the event that completes a pattern to the warning
row being queryable in ClickHouse, and to the pager webhook call.

A ledger dense in planted typologies is produced at a fixed rate (events in ledger order, their own event times)
into a fresh worker with a real ClickHouse server and a local webhook receiver. For each warning, the completing
event is the last of its `txn_ids` to have been produced; its latency is the time from that send to the first
time the row is returned by a query (polled every 20 ms) and to the webhook request (every severity pages,
storm grouping off, so each warning is called once). Everything is timed on this process's monotonic clock.
"""

from __future__ import annotations

import importlib.util
import json
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from .ledgers import LedgerSpec, ledger
from .report import Figure, at_most, info, missing
from .stack import Stack, Worker, local_stack

RATES = {2_000: 0.25, 10_000: 1.0}        # produced events/s -> p99 target (s) to queryable in ClickHouse
# A low-latency deployment's settings: the sink's longest wait before an insert, and the longest a fetch may
# wait for data. Kafka answers a fetch as soon as data arrives; the local tansu broker holds every fetch for
# the whole wait, so on it that wait is latency on each of the two hops (input, outbox).
CLICKHOUSE_BATCH_INTERVAL = "25ms"
BROKER_FETCH_MAX_WAIT = "25ms"
POLL_S = 0.02
POLL_MARGIN_MS = 5_000                    # how far before the newest row seen each poll looks again
SETTLE_S = 15.0                           # after the last send, how long to wait for warnings still due


@dataclass(frozen=True)
class RateResult:
    rate: int
    achieved_rate: float
    events: int
    stored: list[float]                   # seconds, one per warning
    paged: list[float]
    unmatched: int                        # warnings whose completing event was not among those produced
    producer: str = "kafka-python"
    on_disk: bool = False                 # the ClickHouse server's data on disk, not tmpfs: context, no target


def run(*, quick: bool, rules: Path) -> list[RateResult]:
    """Each rate with the ClickHouse server's data on tmpfs (the targets), then 2,000/s once more with it on
    disk, for what the dev server's disk adds (bench/stack.py, `local_stack`)."""
    seconds = 6 if quick else 20
    source = ledger(LedgerSpec(edges=200_000, days=1, instances=40))
    lines = source.read_bytes().splitlines()
    results = []
    for on_disk, rates in ((False, tuple(RATES)), (True, (min(RATES),))):
        with local_stack(clickhouse=True, clickhouse_in_memory=not on_disk) as stack:
            for rate in rates:
                results.append(_one_rate(stack, rules, lines[: rate * seconds], rate, on_disk=on_disk))
    return results


def _one_rate(stack: Stack, rules: Path, lines: list[bytes], rate: int, *, on_disk: bool = False) -> RateResult:
    database = f"bench_{uuid.uuid4().hex[:8]}"
    clickhouse = stack.clickhouse.client()
    clickhouse.execute(f"CREATE DATABASE IF NOT EXISTS {database}")
    receiver = _Receiver()
    server = ThreadingHTTPServer(("127.0.0.1", 0), receiver.handler())
    threading.Thread(target=server.serve_forever, daemon=True).start()
    worker = Worker(stack, rules, settings={
        "clickhouse_url": f"clickhouse://{stack.clickhouse.host}:{stack.clickhouse.port}/{database}",
        "clickhouse_batch_interval": CLICKHOUSE_BATCH_INTERVAL, "broker_fetch_max_wait": BROKER_FETCH_MAX_WAIT,
        "webhook_url": f"http://127.0.0.1:{server.server_address[1]}/page", "page_min_severity": "info",
        "page_storm_limit": "1000000"})
    sent: dict[str, float] = {}
    stored: dict[str, tuple[float, list[str]]] = {}
    stop = threading.Event()
    poller = threading.Thread(target=_poll_store, args=(clickhouse, database, stored, stop), daemon=True)
    try:
        worker.start()
        worker.wait_until(lambda: worker.total("fundflow_graph_edges") >= 0 and worker.ready(), "readiness", 90)
        poller.start()
        sends = [_send_of(line, worker.topics) for line in lines]     # decoded before the clock starts
        producer = Producer(stack.broker.bootstrap)
        started = time.monotonic()
        for index, (topic, key, event_id, line) in enumerate(sends):
            due = started + index / rate
            delay = due - time.monotonic()
            if delay > 0.002:
                time.sleep(delay)
            sent[event_id] = time.monotonic()
            producer.send(topic, key, line)
        producer.flush()
        achieved = len(lines) / (time.monotonic() - started)
        deadline = time.monotonic() + SETTLE_S
        while time.monotonic() < deadline:
            worker.check_alive()
            if worker.total("fundflow_events_consumed_total") >= len(lines) and \
                    len(stored) >= worker.total("fundflow_warnings_total") and len(receiver.seen) >= len(stored):
                break
            time.sleep(0.2)
    finally:
        stop.set()
        worker.stop()
        server.shutdown()
    store_latency, unmatched = _latencies(sent, stored)
    page_latency, _ = _latencies(sent, receiver.seen)
    return RateResult(rate, achieved, len(lines), store_latency, page_latency, unmatched, Producer.name, on_disk)


def _send_of(line: bytes, topics: dict[str, str]) -> tuple[str, bytes, str, bytes]:
    event = json.loads(line)
    topic = topics["transfers_topic" if event["type"] == "transfer" else "disbursements_topic"]
    return topic, (event.get("src") or event["account"]).encode(), event["event_id"], line


class _LibrdkafkaProducer:
    """librdkafka (confluent-kafka, in the `bench` extra): a few µs of this process's CPU per record, so the
    producer neither caps the rate nor takes the cores the worker, the broker and ClickHouse need."""

    name = "librdkafka"

    def __init__(self, bootstrap: str) -> None:
        from confluent_kafka import Producer as Librdkafka
        self._producer = Librdkafka({"bootstrap.servers": bootstrap, "linger.ms": 2, "acks": "1"})
        self.failed = 0

    def _delivered(self, error, _message) -> None:
        if error is not None:
            self.failed += 1

    def send(self, topic: str, key: bytes, value: bytes) -> None:
        while True:
            try:
                self._producer.produce(topic, value=value, key=key, on_delivery=self._delivered)
                break
            except BufferError:              # its queue is full: let deliveries drain it
                self._producer.poll(0.005)
        self._producer.poll(0)

    def flush(self) -> None:
        left = self._producer.flush(30)
        if left or self.failed:
            raise RuntimeError(f"the benchmark's producer could not deliver {left + self.failed} records")


class _KafkaPythonProducer:
    """kafka-python, the project's own client: about 100 µs per record in one Python thread, which caps the
    produced rate at a few thousand a second on a small machine."""

    name = "kafka-python"

    def __init__(self, bootstrap: str) -> None:
        from kafka import KafkaProducer
        self._producer = KafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=2)

    def send(self, topic: str, key: bytes, value: bytes) -> None:
        self._producer.send(topic, key=key, value=value)

    def flush(self) -> None:
        self._producer.flush()
        self._producer.close()


Producer: type = _LibrdkafkaProducer if importlib.util.find_spec("confluent_kafka") else _KafkaPythonProducer


def _poll_store(client, database: str, stored: dict, stop: threading.Event) -> None:
    """Only the rows inserted since the newest one seen, less a margin, so a poll costs the same at the end
    of a run as at its start (one sink inserts, in order, and stamps each row with its insert time)."""
    newest = 0
    while not stop.is_set():
        try:
            rows = client.execute(f"SELECT warning_id, txn_ids, inserted_ms FROM {database}.warnings "
                                  f"WHERE inserted_ms >= {max(0, newest - POLL_MARGIN_MS)}")
        except Exception:  # noqa: BLE001 - the table appears with the first insert
            rows = []
        now = time.monotonic()
        for warning_id, txn_ids, inserted_ms in rows:
            stored.setdefault(warning_id, (now, list(txn_ids)))
            newest = max(newest, inserted_ms)
        stop.wait(POLL_S)


class _Receiver:
    """The pager webhook: records when each warning was first called."""

    def __init__(self) -> None:
        self.seen: dict[str, tuple[float, list[str]]] = {}

    def handler(self):
        seen = self.seen

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                now = time.monotonic()
                self.send_response(200)
                self.end_headers()
                try:
                    warning = json.loads(body)
                    seen.setdefault(warning["warning_id"], (now, list(warning["txn_ids"])))
                except (ValueError, KeyError, TypeError):
                    pass

            def log_message(self, *args) -> None:
                pass

        return Handler


def _latencies(sent: dict[str, float], seen: dict[str, tuple[float, list[str]]]) -> tuple[list[float], int]:
    latencies, unmatched = [], 0
    for at, txn_ids in seen.values():
        produced = [sent[txn] for txn in txn_ids if txn in sent]
        if produced:
            latencies.append(at - max(produced))
        else:
            unmatched += 1
    return sorted(latencies), unmatched


def _quantile(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))]


def figures(results: list[RateResult]) -> list[Figure]:
    rows: list[Figure] = []
    for result in results:
        label = f"@ {result.rate:,}/s" + (", ClickHouse on disk" if result.on_disk else "")
        context = (f"{result.events:,} events sent at {result.achieved_rate:,.0f}/s ({result.producer}), "
                   f"{len(result.stored)} warnings stored, {len(result.paged)} paged")
        if not result.stored:
            rows.append(missing(f"latency to ClickHouse p99 {label}", f"<= {RATES[result.rate]:g} s",
                                f"no warning reached the store; {context}"))
            continue
        stored, paged = result.stored, result.paged
        rows.append(info(f"latency to ClickHouse p50 {label}", _quantile(stored, 0.5), "s", context))
        p99 = _quantile(stored, 0.99)
        rows.append(info(f"latency to ClickHouse p99 {label}", p99, "s") if result.on_disk else
                    at_most(f"latency to ClickHouse p99 {label}", p99, "s", RATES[result.rate]))
        rows.append(info(f"latency to ClickHouse max {label}", stored[-1], "s"))
        if paged:
            rows.append(info(f"latency to webhook p50/p99/max {label}", _quantile(paged, 0.5), "s",
                             f"p99 {_quantile(paged, 0.99):.3f} s, max {paged[-1]:.3f} s"))
    return rows
