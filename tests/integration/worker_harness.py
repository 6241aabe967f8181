"""A real `fundflow worker` process on the session broker, for the recovery, reload, HTTP and shutdown tests.

Every wait polls with a deadline and fails with the worker's log tail, so a failure says what the worker did.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from stream.dev import promtext
from stream.dev.worker_process import WorkerFailed, WorkerProcess, worker_env

RULES = Path(__file__).resolve().parents[2] / "rules"
PARTITIONS = 3
DEADLINE_S = 45.0


def metric(text: str, name: str, **labels: str) -> float | None:
    """One sample's value from a /metrics page's text, or None when absent (or no page)."""
    return promtext.value(promtext.parse_samples(text), name, **labels) if text else None


@dataclass
class WorkerEnv:
    """Topic names, settings and paths private to one test; `start()` runs a worker process with them."""

    bootstrap: str
    env: dict[str, str]
    names: dict[str, str]
    tmp_path: Path
    web_port: int
    runs: list[WorkerProcess] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def log_path(self, run: int) -> Path:
        return self.tmp_path / f"worker-{run}.log"

    def start(self, **overrides: str) -> WorkerProcess:
        env = {**self.env, **{f"FUNDFLOW_{k.upper()}": v for k, v in overrides.items()}}
        web_port = int(overrides.get("web_port", self.web_port))
        process = WorkerProcess.start(env, self.log_path(len(self.runs)), web_port, cwd=self.tmp_path)
        self.runs.append(process)
        return process

    def log_text(self, run: int = -1) -> str:
        return self.runs[run % len(self.runs)].log_text() if self.runs else ""

    def wait_for(self, condition: Callable[[], Any], what: str, deadline_s: float = DEADLINE_S) -> Any:
        def figures() -> str:
            return "metrics:\n" + "\n".join(line for line in self.metrics().splitlines()
                                             if line.startswith("fundflow_") and "_bucket" not in line)
        return wait_for_worker(self.runs[-1], condition, what, deadline_s, diagnose=figures)

    def metrics(self) -> str:
        return self.runs[-1].metrics_text() if self.runs else ""

    def ready(self) -> bool:
        return bool(self.runs) and self.runs[-1].ready()

    def stop_all(self) -> None:
        for process in self.runs:
            process.stop()


def wait_for_worker(worker: WorkerProcess, condition: Callable[[], Any], what: str, deadline_s: float = DEADLINE_S,
                    *, tolerate: tuple[type[BaseException], ...] = (), diagnose: Callable[[], str] = lambda: "") -> Any:
    """`worker.wait_for`, failing the test (with the worker's log) instead of raising."""
    try:
        return worker.wait_for(condition, what, deadline_s, tolerate=tolerate, diagnose=diagnose)
    except WorkerFailed as exc:
        pytest.fail(str(exc))


def copy_rules(tmp_path: Path) -> Path:
    """A private copy of the shipped rules: the worker hot-reloads its rules_dir, and a test must not see
    edits made to the repository's rules while it runs."""
    target = tmp_path / "rules"
    shutil.copytree(RULES, target, ignore=shutil.ignore_patterns("*.md"))
    return target


def make_worker_env(kafka_broker, tmp_path: Path, unique, web_port: int, rules_dir: Path,
                    **settings: str) -> WorkerEnv:
    names = {
        "disbursements_topic": unique("it.disbursements."), "transfers_topic": unique("it.transfers."),
        "warnings_topic": unique("it.warnings."), "deadletter_topic": unique("it.deadletter."),
        "app_id": unique("it-worker-"),
    }
    kafka_broker.create_topics(list(names.values())[:4], partitions=PARTITIONS)
    values = {**names, "broker_url": kafka_broker.url, "topic_partitions": str(PARTITIONS),
              "web_port": str(web_port), "data_dir": str(tmp_path / "data"), "rules_dir": str(rules_dir),
              "broker_session_timeout": "6s", "broker_rebalance_timeout": "6s",
              "clickhouse_url": f"chdb://{tmp_path / 'chdb'}", **settings}
    return WorkerEnv(bootstrap=kafka_broker.bootstrap, env=worker_env(values), names=names, tmp_path=tmp_path, web_port=web_port)


def produce(bootstrap: str, names: dict[str, str], events: list[dict]) -> None:
    """Events to their input topic by type, keyed by account, in list order."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    try:
        for event in events:
            topic = names["disbursements_topic"] if event["type"] == "disbursement" else names["transfers_topic"]
            key = (event.get("account") or event["src"]).encode()
            producer.send(topic, key=key, value=json.dumps(event).encode())
        producer.flush(timeout=30)
    finally:
        producer.close()


def read_topic(bootstrap: str, topic: str, partitions: int = PARTITIONS) -> list:
    """Every record of `topic` right now (all partitions, from the start).

    Reads past the reported end offsets until a poll comes back empty: the local broker reports the end of a
    partition as the base offset of its last record batch plus one, short of the truth when that batch holds
    several records.
    """
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        records = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            polled = consumer.poll(timeout_ms=500)
            for batch in polled.values():
                records.extend(batch)
            if not polled and all(consumer.position(tp) >= ends[tp] for tp in tps):
                break
        return records
    finally:
        consumer.close()


def warning_ids(bootstrap: str, topic: str) -> list[str]:
    return [json.loads(record.value)["warning_id"] for record in read_topic(bootstrap, topic)]


def warnings_in_topic(bootstrap: str, topic: str) -> list[dict]:
    return [json.loads(record.value) for record in read_topic(bootstrap, topic)]


def committed_everything(bootstrap: str, group: str, topics: list[str]) -> bool:
    """The group's committed offsets equal the end of every partition of `topics`."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        partitions = [TopicPartition(t, p) for t in topics for p in range(PARTITIONS)]
        ends = consumer.end_offsets(partitions)
        return all((consumer.committed(tp) or 0) >= ends[tp] for tp in partitions)
    finally:
        consumer.close()
