"""End to end ingest: a real tansu broker, the real Faust worker (`run_worker`) in a subprocess, a detector
that records what reaches it.

Checks the worker's contract: every good event reaches the detector, in log order per partition; every bad
message lands in the dead-letter topic with its original key and bytes and a header saying why and where;
a detector failure on one event dead-letters that event and the worker carries on; warnings reach the
warnings topic keyed by their id.
"""

from __future__ import annotations

import json
import os
import re
import sys
import textwrap
import time
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from stream.worker.deadletter import headers_dict
from stream.dev.worker_process import WorkerProcess
from worker_harness import wait_for_worker

PARTITIONS = 3
DEADLINE_S = 40.0
BASE_TS = 1_772_446_500_000  # 2026-03-02T10:15:00Z

# The recording detector: a real object honouring the worker's detector interface (process + watermark).
# It appends each event to a file, raises on event ids starting with "boom", and warns on ids starting
# with "warn".
WORKER_SCRIPT = textwrap.dedent("""
    import sys
    import orjson
    from stream.settings import load_settings
    from stream.model.warning import EarlyWarning, make_warning_id
    from stream.worker.runner import run_worker

    class RecordingDetector:
        def __init__(self, path):
            self.watermark = None
            self._out = open(path, "ab", buffering=0)

        def process(self, event, detected_at=None):
            if event.event_id.startswith("boom"):
                raise RuntimeError("planted detector failure")
            self._out.write(orjson.dumps({"event_id": event.event_id, "type": event.type, "ts": event.ts})
                            + b"\\n")
            self.watermark = max(self.watermark or event.ts, event.ts)
            if not event.event_id.startswith("warn"):
                return []
            return [EarlyWarning(
                warning_id=make_warning_id("test-rule", "1", event.event_id), rule_id="test-rule",
                rule_version="1", kind="rapid_cashout", severity="high", score=0.9, subject=event.event_id,
                accounts=event.accounts, loan_ids=(), txn_ids=(event.event_id,), amount=event.amount,
                currency=event.currency, first_ts=event.ts, event_ts=event.ts, detected_at=event.ts,
                summary="planted")]

    sys.exit(run_worker(load_settings(None), RecordingDetector(sys.argv[1]), loglevel="warning"))
""")


def _disbursement(n: int, account: str, ts: int) -> dict:
    return {"type": "disbursement", "event_id": f"d-{n}", "ts": ts, "loan_id": f"L-{n}", "account": account,
            "amount": "5000.00", "currency": "CNY"}


def _transfer(n: int, src: str, dst: str, ts: int, prefix: str = "t") -> dict:
    return {"type": "transfer", "event_id": f"{prefix}-{n}", "ts": ts, "src": src, "dst": dst,
            "amount": "12.34", "channel": "p2p"}


def _dump(obj) -> bytes:
    return json.dumps(obj).encode()


class Ledger:
    """Produces to the input topics and remembers where every message landed."""

    def __init__(self, bootstrap: str) -> None:
        self.producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
        self.placed: dict[str, tuple[str, int, int]] = {}         # event_id -> (topic, partition, offset)
        self.bad: list[tuple[str, bytes | None, bytes, str, int, int]] = []  # (reason, key, value, t, p, o)

    def send(self, topic: str, key: str | None, value: bytes):
        meta = self.producer.send(topic, key=key.encode() if key else None, value=value).get(timeout=30)
        return meta.topic, meta.partition, meta.offset

    def good(self, topic: str, event: dict) -> None:
        key = event.get("account") or event["src"]
        self.placed[event["event_id"]] = self.send(topic, key, _dump(event))

    def bad_message(self, topic: str, key: str | None, value: bytes, reason: str) -> None:
        self.bad.append((reason, key.encode() if key else None, value, *self.send(topic, key, value)))


def _read_received(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


def _wait_for(condition, what: str, worker: WorkerProcess, deadline_s: float = DEADLINE_S):
    return wait_for_worker(worker, condition, what, deadline_s)


def _consume_all(bootstrap: str, topic: str, expected: int, deadline_s: float = DEADLINE_S) -> list:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, consumer_timeout_ms=500)
    try:
        partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        records = []
        deadline = time.monotonic() + deadline_s
        while len(records) < expected and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
        return records
    finally:
        consumer.close()


@pytest.fixture
def worker_env(kafka_broker, tmp_path, unique, free_port):
    names = {
        "disbursements_topic": unique("it.disbursements."), "transfers_topic": unique("it.transfers."),
        "warnings_topic": unique("it.warnings."), "deadletter_topic": unique("it.deadletter."),
        "app_id": unique("it-worker-"),
    }
    env = {**os.environ, **{f"FUNDFLOW_{k.upper()}": v for k, v in names.items()},
           "FUNDFLOW_BROKER_URL": kafka_broker.url, "FUNDFLOW_TOPIC_PARTITIONS": str(PARTITIONS),
           "FUNDFLOW_WEB_PORT": str(free_port), "FUNDFLOW_DATA_DIR": str(tmp_path / "data"),
           "FUNDFLOW_BROKER_SESSION_TIMEOUT": "6s", "FUNDFLOW_BROKER_REBALANCE_TIMEOUT": "6s"}
    return names, env


def test_worker_routes_good_events_to_detector_and_bad_ones_to_deadletter(kafka_broker, worker_env, tmp_path):
    names, env = worker_env
    disb, xfer = names["disbursements_topic"], names["transfers_topic"]
    received_path, log_path, script = tmp_path / "received.jsonl", tmp_path / "worker.log", tmp_path / "worker.py"
    script.write_text(WORKER_SCRIPT)
    accounts = [f"U{1000 + i}" for i in range(8)]

    worker = WorkerProcess.start(env, log_path, 0, command=[sys.executable, str(script), str(received_path)],
                                 cwd=tmp_path)
    ledger = Ledger(kafka_broker.bootstrap)
    try:
        # The worker creates its topics at start; wait for them rather than racing it.
        def topics_exist():
            consumer = KafkaConsumer(bootstrap_servers=kafka_broker.bootstrap)
            try:
                return {disb, xfer, names["deadletter_topic"], names["warnings_topic"]} <= consumer.topics()
            finally:
                consumer.close()
        _wait_for(topics_exist, "the worker to create its topics", worker)

        # Phase 1: good events on both topics, many accounts, so every partition gets some.
        for n in range(24):
            ts = BASE_TS + n * 1000
            ledger.good(disb, _disbursement(n, accounts[n % 8], ts))
            ledger.good(xfer, _transfer(n, accounts[n % 8], accounts[(n + 3) % 8], ts + 500))
        phase1 = set(ledger.placed)
        _wait_for(lambda: phase1 <= {r["event_id"] for r in _read_received(received_path)},
                  "phase 1 events at the detector", worker)

        # Phase 2: one of every kind of bad message, interleaved with good ones.
        ts = BASE_TS + 60_000
        good_t = _transfer(0, "U1000", "U1001", ts)
        bad_messages = [
            (xfer, "U1000", b'{"type": "transfer", "event_id": ', "malformed_json"),
            (xfer, "U1001", b"\xff\xfe\x00garbage", "malformed_json"),
            (xfer, "U1002", b"[1, 2, 3]", "not_an_object"),
            (disb, "U1003", _dump({**_disbursement(900, "U1003", ts), "account": None}), "missing_field"),
            (disb, "U1004", _dump({**_disbursement(901, "U1004", ts), "account": 42}), "wrong_type"),
            (disb, "U1005", _dump({**_disbursement(902, "U1005", ts), "type": "refund"}), "unknown_type"),
            (xfer, "U1006", _dump({**good_t, "event_id": "t-903", "amount": "-5"}), "bad_amount"),
            (xfer, "U1007", _dump({**good_t, "event_id": "t-904", "amount": "1.005"}), "bad_amount"),
            (xfer, "U1000", _dump({**good_t, "event_id": "t-905", "ts": "yesterday"}), "bad_timestamp"),
            (xfer, "U1001", _dump({**good_t, "event_id": "t-906", "ts": 1_700_000_000}), "absurd_timestamp"),
            (xfer, "U1002", _dump({**good_t, "event_id": "t-907", "ts": BASE_TS + 3 * 86_400_000}),
             "absurd_timestamp"),
            (xfer, "U1003", _dump({**good_t, "event_id": "t-908", "src": "U1003", "dst": "U1003"}),
             "self_transfer"),
            (xfer, None, b"null", "not_an_object"),
            (disb, "U1004", _dump(_disbursement(909, "U1004", ts) | {"event_id": "boom-909"}), "detector_error"),
        ]
        for n, (topic, key, value, reason) in enumerate(bad_messages):
            ledger.bad_message(topic, key, value, reason)
            if n % 3 == 0:
                ledger.good(xfer, _transfer(100 + n, accounts[n % 8], accounts[(n + 1) % 8], ts + n))
        # Phase 3: good events after all the bad ones (the worker survived), one of which raises a warning.
        for n in range(200, 212):
            ledger.good(disb, _disbursement(n, accounts[n % 8], ts + 10_000 + n))
        ledger.good(xfer, _transfer(999, "U1001", "U1002", ts + 20_000, prefix="warn"))

        every_good = set(ledger.placed)
        received = _wait_for(
            lambda: (lambda rows: rows if every_good <= {r["event_id"] for r in rows} else None)(
                _read_received(received_path)),
            "every good event at the detector", worker)

        # Exactly the good events, each once, and in log order within every partition.
        ids = [r["event_id"] for r in received]
        assert sorted(ids) == sorted(every_good)
        position = {event_id: i for i, event_id in enumerate(ids)}
        by_partition: dict[tuple[str, int], list[tuple[int, str]]] = {}
        for event_id, (topic, partition, offset) in ledger.placed.items():
            by_partition.setdefault((topic, partition), []).append((offset, event_id))
        assert len(by_partition) >= 4, f"expected events on several partitions, got {sorted(by_partition)}"
        for (topic, partition), placed in by_partition.items():
            in_log_order = [event_id for _, event_id in sorted(placed)]
            assert sorted(in_log_order, key=position.__getitem__) == in_log_order, (topic, partition)

        # Every bad message: in the dead-letter topic, original key and bytes, reason and origin headers.
        letters = _consume_all(kafka_broker.bootstrap, names["deadletter_topic"], len(bad_messages))
        assert len(letters) == len(bad_messages)
        by_origin = {}
        for record in letters:
            headers = headers_dict(record.headers)
            origin = (headers["fundflow.topic"], int(headers["fundflow.partition"]), int(headers["fundflow.offset"]))
            by_origin[origin] = (record.key, record.value, headers)
        for reason, key, value, topic, partition, offset in ledger.bad:
            got_key, got_value, headers = by_origin[(topic, partition, offset)]
            assert (got_key, got_value) == (key, value)
            assert headers["fundflow.reason"] == reason, (value, headers)
            assert headers["fundflow.error"]
        planted = by_origin[next((t, p, o) for r, _, _, t, p, o in ledger.bad if r == "detector_error")]
        assert "planted detector failure" in planted[2]["fundflow.error"]

        # The warning is in the outbox, keyed by its id.
        warnings = _consume_all(kafka_broker.bootstrap, names["warnings_topic"], 1)
        assert [json.loads(w.value)["subject"] for w in warnings] == ["warn-999"]
        assert warnings[0].key == json.loads(warnings[0].value)["warning_id"].encode()

        assert worker.poll() is None, "the worker must survive bad input"
    finally:
        ledger.producer.close()
        worker.stop()
    assert worker.returncode == 0, worker.log_tail(80)


def test_produce_sends_valid_lines_unchanged_and_reports_refusals(kafka_broker, tmp_path, unique, capsys,
                                                                   monkeypatch):
    import gzip

    from stream.cli import main

    disb, xfer = unique("it.produce.disb."), unique("it.produce.xfer.")
    kafka_broker.create_topics([disb, xfer], partitions=PARTITIONS)
    good = [_dump(_disbursement(n, f"U{n % 5}", BASE_TS + n)) for n in range(10)]
    good += [_dump(_transfer(n, f"U{n % 5}", "U9", BASE_TS + 100 + n)) for n in range(15)]
    lines = good[:12] + [b"{oops", b"", b"[]"] + good[12:] + [
        _dump({**_transfer(50, "U1", "U1", BASE_TS)}), b"{oops again", _dump(_transfer(51, "U1", "U2", 5))]
    path = tmp_path / "ledger.jsonl.gz"
    with gzip.open(path, "wb") as handle:
        handle.write(b"\n".join(lines) + b"\n")

    monkeypatch.setenv("FUNDFLOW_DISBURSEMENTS_TOPIC", disb)
    monkeypatch.setenv("FUNDFLOW_TRANSFERS_TOPIC", xfer)
    assert main(["produce", str(path), "--broker", kafka_broker.url, "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert f"sent 10 to {disb}" in out and f"sent 15 to {xfer}" in out
    assert "refused 5 lines" in out
    # Line numbers count the blank line 14 (skipped, not refused).
    assert "malformed_json: 2 (lines 13, 30)" in out
    assert "not_an_object: 1 (lines 15)" in out
    assert "self_transfer: 1 (lines 29)" in out
    assert "absurd_timestamp: 1 (lines 31)" in out

    records = _consume_all(kafka_broker.bootstrap, disb, 10) + _consume_all(kafka_broker.bootstrap, xfer, 15)
    assert sorted(r.value for r in records) == sorted(good)
    for record in records:
        event = json.loads(record.value)
        assert record.key == (event.get("account") or event["src"]).encode()


def test_produce_of_a_truncated_file_says_how_many_were_sent_and_from_which_line_to_resume(
        kafka_broker, tmp_path, unique, capsys, monkeypatch):
    import gzip

    from stream.cli import main

    disb, xfer = unique("it.produce.disb."), unique("it.produce.xfer.")
    kafka_broker.create_topics([disb, xfer], partitions=PARTITIONS)
    lines = [_dump(_transfer(n, f"U{n % 7}", "U9", BASE_TS + n)) for n in range(6000)]
    whole = gzip.compress(b"\n".join(lines) + b"\n")
    path = tmp_path / "trunc.jsonl.gz"
    path.write_bytes(whole[: len(whole) // 2])
    monkeypatch.setenv("FUNDFLOW_DISBURSEMENTS_TOPIC", disb)
    monkeypatch.setenv("FUNDFLOW_TRANSFERS_TOPIC", xfer)
    assert main(["produce", str(path), "--broker", kafka_broker.url, "--no-progress", "--rate", "0"]) == 1
    err = capsys.readouterr().err
    match = re.search(r"cannot read past line (\d+) .*; (\d+) events of lines 1-\d+ were sent and "
                                    r"acknowledged, 0 refused; fix the file and produce again from line (\d+)", err)
    assert match and "Traceback" not in err, err
    read, sent, resume = map(int, match.groups())
    assert 0 < sent == read < 6000 and resume == read + 1
    assert len(_consume_all(kafka_broker.bootstrap, xfer, sent)) == sent


def test_a_backlog_is_read_in_log_order_and_its_offsets_committed(kafka_broker, worker_env, tmp_path):
    """Input records skip Faust's per-message stream: the worker hands each fetch to the pipeline as one batch
    and acknowledges its offsets through Faust's consumer, whose commits must then reach the end of every
    partition."""
    names, env = worker_env
    disb, xfer = names["disbursements_topic"], names["transfers_topic"]
    received_path, script = tmp_path / "received.jsonl", tmp_path / "worker.py"
    script.write_text(WORKER_SCRIPT)
    accounts = [f"U{1000 + i}" for i in range(30)]
    # The backlog is there before the worker starts.
    kafka_broker.create_topics([disb, xfer, names["warnings_topic"], names["deadletter_topic"]], PARTITIONS)
    producer = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap, acks="all", linger_ms=20)
    placed: dict[str, object] = {}
    try:
        for n in range(3000):
            ts = BASE_TS + n * 100
            if n % 100 == 0:
                event = _disbursement(n, accounts[n % 30], ts)
                placed[event["event_id"]] = producer.send(disb, key=event["account"].encode(), value=_dump(event))
            event = _transfer(n, accounts[n % 30], accounts[(n + 7) % 30], ts + 50)
            placed[event["event_id"]] = producer.send(xfer, key=event["src"].encode(), value=_dump(event))
        producer.flush()
        placed = {event_id: future.get(timeout=30) for event_id, future in placed.items()}
    finally:
        producer.close()
    ends: dict[tuple[str, int], int] = {}
    for meta in placed.values():
        ends[(meta.topic, meta.partition)] = max(ends.get((meta.topic, meta.partition), 0), meta.offset + 1)
    assert len(ends) >= 4, f"expected records on several partitions, got {sorted(ends)}"

    web_port = int(env["FUNDFLOW_WEB_PORT"])
    worker = WorkerProcess.start(env, tmp_path / "worker.log", web_port,
                                 command=[sys.executable, str(script), str(received_path)], cwd=tmp_path)
    try:
        received = _wait_for(
            lambda: (lambda rows: rows if len(rows) >= len(placed) else None)(_read_received(received_path)),
            "the backlog at the detector", worker, deadline_s=90)
        ids = [r["event_id"] for r in received]
        assert sorted(ids) == sorted(placed)
        position = {event_id: i for i, event_id in enumerate(ids)}
        for tp in ends:
            in_log_order = [event_id for event_id, meta in sorted(placed.items(), key=lambda item: item[1].offset)
                            if (meta.topic, meta.partition) == tp]
            assert sorted(in_log_order, key=position.__getitem__) == in_log_order, tp

        def committed() -> dict[tuple[str, int], int] | None:
            consumer = KafkaConsumer(bootstrap_servers=kafka_broker.bootstrap, group_id=names["app_id"],
                                     enable_auto_commit=False)
            try:
                got = {tp: consumer.committed(TopicPartition(*tp)) for tp in ends}
            finally:
                consumer.close()
            return got if got == ends else None
        _wait_for(committed, "the group's commits at the end of every input partition", worker, deadline_s=30)
        assert worker.poll() is None
    finally:
        worker.stop()
    assert worker.returncode == 0, worker.log_tail(80)
