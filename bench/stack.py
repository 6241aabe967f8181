"""The live benchmarks' stack: a local broker and ClickHouse server (stream.dev.devstack), and real `fundflow worker`
processes configured through FUNDFLOW_* variables, watched through their /metrics page."""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from stream.dev.devstack import ClickHouseServer, KafkaBroker, free_port, start_clickhouse, start_kafka

FUNDFLOW = str(Path(sys.executable).with_name("fundflow"))
# clickhouse-driver logs a traceback for every refused connection while the server is still starting.
logging.getLogger("clickhouse_driver").setLevel(logging.CRITICAL)


@dataclass
class Stack:
    broker: KafkaBroker
    clickhouse: ClickHouseServer | None
    workdir: Path


@contextmanager
def local_stack(*, clickhouse: bool) -> Iterator[Stack]:
    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="fundflow-bench-") as workdir:
        broker = start_kafka()
        stack.callback(broker.stop)
        server = None
        if clickhouse:
            server = start_clickhouse()
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
    process: subprocess.Popen | None = None

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
        env = {k: v for k, v in os.environ.items() if not k.startswith("FUNDFLOW_")}
        env.update({f"FUNDFLOW_{k.upper()}": v for k, v in self.values.items()})
        return env

    def start(self) -> None:
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen([FUNDFLOW, "worker", "--loglevel", "warning"], env=self.env(),
                                            stdout=log, stderr=subprocess.STDOUT, cwd=self.data_dir)

    def metrics(self) -> str:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.web_port}/metrics", timeout=2) as response:
                return response.read().decode()
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return ""

    def ready(self) -> bool:
        """/readyz answers 200."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.web_port}/readyz", timeout=2) as response:
                return response.status == 200
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    def total(self, name: str) -> float:
        """Sum of every sample of metric `name` (all labels); 0 when the page is not up yet."""
        pattern = re.compile(rf"^{re.escape(name)}(?:\{{[^}}]*\}})? (\S+)$", re.MULTILINE)
        return sum(float(value) for value in pattern.findall(self.metrics()))

    def check_alive(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            tail = self.log_path.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"worker exited with {self.process.returncode}:\n{tail}")

    def wait_until(self, condition, what: str, timeout_s: float, poll_s: float = 0.05):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.check_alive()
            value = condition()
            if value:
                return value
            time.sleep(poll_s)
        raise TimeoutError(f"worker {self.name}: no {what} after {timeout_s:.0f} s; log tail:\n"
                           f"{self.log_path.read_text(errors='replace')[-3000:]}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
