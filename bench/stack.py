"""The live benchmarks' stack: a local broker and ClickHouse server (stream.dev.devstack), and real `fundflow worker`
processes configured through FUNDFLOW_* variables, watched through their /metrics page."""

from __future__ import annotations

import logging
import sys
import tempfile
import uuid
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from stream.dev import promtext
from stream.dev.devstack import ClickHouseServer, KafkaBroker, free_port, start_clickhouse, start_kafka
from stream.dev.worker_process import WorkerProcess, worker_command, worker_env

FUNDFLOW = str(Path(sys.executable).with_name("fundflow"))
# clickhouse-driver logs a traceback for every refused connection while the server is still starting.
logging.getLogger("clickhouse_driver").setLevel(logging.CRITICAL)


@dataclass
class Stack:
    broker: KafkaBroker
    clickhouse: ClickHouseServer | None
    workdir: Path


MEMORY_FS = Path("/dev/shm")


@contextmanager
def local_stack(*, clickhouse: bool, clickhouse_in_memory: bool = False) -> Iterator[Stack]:
    """`clickhouse_in_memory`: the server keeps its data on tmpfs (`MEMORY_FS`), as the broker keeps its log in
    memory. Debian's 18.16 server writes every insert as a part of two files per column; on this machine's disk
    an insert into the warnings table takes about 40 ms, on tmpfs about 5 ms, so on disk the latency figures
    measure the disk. (A current server writes small inserts as compact parts, one file.)"""
    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="fundflow-bench-") as workdir:
        broker = start_kafka()
        stack.callback(broker.stop)
        server = None
        if clickhouse:
            data = None
            if clickhouse_in_memory and MEMORY_FS.is_dir():
                data = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="fundflow-clickhouse-",
                                                                           dir=MEMORY_FS)))
            server = start_clickhouse(workdir=data)
            stack.callback(server.stop)
        yield Stack(broker, server, Path(workdir))


@dataclass
class Worker:
    """One `fundflow worker` process with private topics, consumer group and web port."""

    stack: Stack
    rules: Path
    settings: dict[str, str] = field(default_factory=dict)
    name: str = field(default_factory=lambda: f"bench-{uuid.uuid4().hex[:8]}")
    web_port: int = field(default_factory=free_port)
    process: WorkerProcess | None = None

    def __post_init__(self) -> None:
        self.topics = {"disbursements_topic": f"{self.name}.disbursements",
                       "transfers_topic": f"{self.name}.transfers",
                       "warnings_topic": f"{self.name}.warnings", "deadletter_topic": f"{self.name}.deadletter"}
        self.stack.broker.create_topics(list(self.topics.values()), partitions=1)
        self.data_dir = self.stack.workdir / self.name
        self.data_dir.mkdir()
        store = self.stack.clickhouse.url if self.stack.clickhouse else f"chdb://{self.data_dir / 'chdb'}"
        self.values = {**self.topics, "app_id": self.name, "broker_url": self.stack.broker.url,
                       "topic_partitions": "1", "web_port": str(self.web_port), "data_dir": str(self.data_dir),
                       "rules_dir": str(self.rules.resolve()), "broker_session_timeout": "6s",
                       "broker_rebalance_timeout": "6s", "clickhouse_url": store, **self.settings}

    @property
    def log_path(self) -> Path:
        return self.data_dir / "worker.log"

    def env(self) -> dict[str, str]:
        return worker_env(self.values)

    def start(self) -> None:
        self.process = WorkerProcess.start(self.env(), self.log_path, self.web_port,
                                           command=worker_command(loglevel="warning"), cwd=self.data_dir)

    def ready(self) -> bool:
        """/readyz answers 200."""
        return self.process is not None and self.process.ready()

    def total(self, name: str) -> float:
        """Sum of every sample of metric `name` (all labels); 0 when the page is not up yet."""
        return promtext.total(self.process.metrics(), name) if self.process is not None else 0.0

    def check_alive(self) -> None:
        if self.process is not None and not self.process.alive():
            raise RuntimeError(f"worker exited with {self.process.returncode}:\n{self.process.log_tail()}")

    def wait_until(self, condition, what: str, timeout_s: float, poll_s: float = 0.05):
        return self.process.wait_for(condition, what, timeout_s, poll_s=poll_s)

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
