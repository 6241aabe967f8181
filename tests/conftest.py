"""Shared fixtures: one real broker and one real ClickHouse server per test session.

Starting each server takes well under a second, but tests still share them: every test uses its own topic
names / database objects (see `unique_name`) so they cannot see each other's data. A missing server binary
fails the test with the install command instead of skipping it, so a green run always means the real
stack was exercised.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import pytest

from stream.dev import devstack
from stream.dev.devstack import free_port as _free_port

_INTEGRATION_DIR = Path(__file__).parent / "integration"
_counter = itertools.count(1)


def pytest_configure(config):
    # kafka-python loads its protocol schemas through a deprecated importlib.resources call, hundreds of times.
    config.addinivalue_line("filterwarnings", r"ignore:(read|open)_text is deprecated:DeprecationWarning")


def pytest_collection_modifyitems(config, items):
    """Everything under tests/integration needs the local stack: mark it so `-m "not integration"` works."""
    for item in items:
        if _INTEGRATION_DIR in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.integration)


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (for HTTP servers, worker web ports, ...)."""
    return _free_port()


@pytest.fixture(name="free_port")
def free_port_fixture() -> int:
    return _free_port()


def unique_name(prefix: str) -> str:
    """A name no other test in this session uses: for topics, consumer groups, tables."""
    return f"{prefix}{os.getpid()}_{next(_counter)}"


@pytest.fixture
def unique() -> "callable":
    """`unique("fundflow.transfers.")` -> a topic/table/group name private to the calling test."""
    return unique_name


def _start(starter, workdir):
    try:
        return starter(workdir=workdir)
    except devstack.DevStackError as exc:
        problem = str(exc)
    pytest.fail(problem, pytrace=False)


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory):
    """A running tansu broker: `.url` (kafka://127.0.0.1:PORT), `.bootstrap`, `.host`, `.port`,
    `.create_topics(names, partitions)`."""
    broker = _start(devstack.start_kafka, tmp_path_factory.mktemp("kafka"))
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def clickhouse_server(tmp_path_factory):
    """A running ClickHouse server: `.url` (clickhouse://127.0.0.1:PORT/default), `.host`, `.port` (native),
    `.http_port`, `.client()` (a clickhouse_driver.Client)."""
    server = _start(devstack.start_clickhouse, tmp_path_factory.mktemp("clickhouse"))
    try:
        yield server
    finally:
        server.stop()
