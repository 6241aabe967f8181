"""Create the topics fundflow reads and writes, when they do not exist yet.

A fresh broker (the local stack, a new environment) has none of them, and a consumer subscribed to a
missing topic waits forever without saying why. Existing topics are never altered.
"""

from __future__ import annotations

import time
from typing import Sequence

from ..errors import CONNECT_TIMEOUT_S, FundflowError, not_answering
from ..settings import Settings


class TopicError(FundflowError):
    """Topics could not be created or did not appear."""


def fundflow_topics(settings: Settings) -> list[str]:
    return [settings.disbursements_topic, settings.transfers_topic, settings.warnings_topic,
            settings.deadletter_topic]


def ensure_topics(settings: Settings, *, timeout_s: float = 30.0) -> list[str]:
    """Create the input, warnings and dead-letter topics that are missing; returns the names created."""
    return create_topics(settings.broker_bootstrap, fundflow_topics(settings), settings.topic_partitions,
                         timeout_s=timeout_s)


def create_topics(bootstrap: str | Sequence[str], names: Sequence[str], partitions: int = 1,
                  *, timeout_s: float = 30.0, configs: dict[str, str] | None = None) -> list[str]:
    """Create the topics that do not exist yet (with `configs`, e.g. {"cleanup.policy": "compact"}); returns the
    names created. Existing topics are left alone."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    from kafka.errors import KafkaError, TopicAlreadyExistsError

    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout_s * 1000),
                                 client_id="fundflow-topics", bootstrap_timeout_ms=CONNECT_TIMEOUT_S * 1000)
    except KafkaError as exc:
        raise TopicError(not_answering("broker", _address(bootstrap), f"creating topics: {exc}")) from None
    try:
        existing = set(admin.list_topics())
        missing = [name for name in dict.fromkeys(names) if name not in existing]
        if missing:
            try:
                admin.create_topics([NewTopic(name, partitions, 1, topic_configs=configs or {}) for name in missing],
                                    timeout_ms=int(timeout_s * 1000))
            except TopicAlreadyExistsError:
                pass  # created by another process between list and create: what we wanted anyway
        _wait_for_topics(admin, missing, timeout_s)
        return missing
    except KafkaError as exc:
        raise TopicError(f"cannot create topics {missing} on the broker at {_address(bootstrap)} ({exc})") from None
    finally:
        admin.close()


def _address(bootstrap: str | Sequence[str]) -> str:
    """Bootstrap servers spelt as the broker_url setting spells them."""
    servers = [bootstrap] if isinstance(bootstrap, str) else list(bootstrap)
    return "kafka://" + ";".join(server.split("://", 1)[-1] for server in servers)


def _wait_for_topics(admin, names: Sequence[str], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while names and not set(names) <= set(admin.list_topics()):
        if time.monotonic() > deadline:
            raise TopicError(f"topics {sorted(names)} were not visible {timeout_s:.0f}s after creation")
        time.sleep(0.1)
