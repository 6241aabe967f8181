"""The Faust worker: input topics in, warnings (the outbox) and dead letters out.

All decisions live in `MessageHandler`; this module only wires Kafka to it. One agent per input topic,
concurrency 1, so each partition's events reach the detector in log order (DESIGN §3.1). A warning is
acknowledged by the broker before the next message is read, so a crash can re-emit a warning (same id,
sinks dedupe) but never lose one.
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path
from typing import Any, Callable

import faust

from ..settings import Settings
from .deadletter import DeadLetter, Origin, normalize_headers
from .handler import DetectorLike, MessageHandler, Outcome

log = logging.getLogger(__name__)

RAW = "raw"  # input values are parsed by parse_event, not by Faust, so bad bytes reach the dead-letter path
SINK_HOOK_MODULE = "stream.worker.sink_agents"
METRICS_HOOK_MODULE = "stream.worker.metrics"


def build_app(settings: Settings, detector: DetectorLike, *, attach_sinks: bool = True,
              app_id: str | None = None) -> faust.App:
    """A configured Faust app whose agents feed `detector`. The app is returned unstarted.

    `app.fundflow_handler` exposes the handler's counters (accepted, refused by reason, warnings raised).
    """
    datadir = Path(settings.data_dir) / "worker"
    datadir.parent.mkdir(parents=True, exist_ok=True)   # Faust creates only the last level
    app = faust.App(
        app_id or settings.app_id,
        broker=settings.broker_url,
        broker_session_timeout=settings.broker_session_timeout / 1000,
        broker_rebalance_timeout=settings.broker_rebalance_timeout / 1000,
        broker_heartbeat_interval=min(3.0, settings.broker_session_timeout / 3000),
        datadir=str(datadir),
        store="memory://",
        key_serializer=RAW,
        value_serializer=RAW,
        web_port=settings.web_port,
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=1,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
    )
    handler = MessageHandler(detector)
    app.fundflow_handler = handler
    app.fundflow_settings = settings

    warnings_topic = _raw_topic(app, settings.warnings_topic)
    deadletter_topic = _raw_topic(app, settings.deadletter_topic)

    async def consume(stream) -> None:
        async for event in stream.events():
            message = event.message
            origin = Origin(message.topic, message.partition, message.offset)
            outcome = handler.handle(message.value, key=message.key, origin=origin,
                                     headers=normalize_headers(message.headers))
            await _publish(outcome, warnings_topic, deadletter_topic)

    for topic_name, agent_name in ((settings.disbursements_topic, "disbursements"),
                                   (settings.transfers_topic, "transfers")):
        app.agent(_raw_topic(app, topic_name), name=f"fundflow.{agent_name}", concurrency=1)(
            _named(consume, f"consume_{agent_name}"))

    if attach_sinks:
        _call_hook(SINK_HOOK_MODULE, "attach_sinks", app, settings)
    _call_hook(METRICS_HOOK_MODULE, "attach_metrics", app, settings)
    return app


async def _publish(outcome: Outcome, warnings_topic, deadletter_topic) -> None:
    """Send and wait for the broker's acknowledgement: the outbox must hold it before we move on."""
    for warning in outcome.warnings:
        pending = await warnings_topic.send(key=warning.warning_id.encode(), value=warning.to_json())
        await pending
    if outcome.dead_letter is not None:
        await _send_dead_letter(outcome.dead_letter, deadletter_topic)


async def _send_dead_letter(letter: DeadLetter, deadletter_topic) -> None:
    pending = await deadletter_topic.send(key=letter.key, value=letter.value, headers=letter.headers())
    await pending


def _raw_topic(app: faust.App, name: str):
    return app.topic(name, key_type=bytes, value_type=bytes, key_serializer=RAW, value_serializer=RAW)


def _named(fn: Callable[..., Any], name: str) -> Callable[..., Any]:
    """Faust names agents after their function; two agents need two distinct functions."""
    async def agent(stream):
        await fn(stream)
    agent.__name__ = agent.__qualname__ = name
    return agent


def _call_hook(module_name: str, function_name: str, app: faust.App, settings: Settings) -> None:
    """Optional extensions (sinks, metrics pages) plug in here when their module exists."""
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            return
        raise
    hook = getattr(module, function_name, None)
    if hook is not None:
        hook(app, settings)
