"""Publishing outcomes to the outbox (warnings topic) and the dead-letter topic, without ever raising into an
agent.

A send can fail in two ways, and they need opposite answers:
- the broker is slow, restarting or has no leader (any other Kafka error): the outcome must still get out,
  so the send is retried with backoff until it succeeds. Nothing moves on meanwhile, so nothing is committed
  past an outcome that is not yet in Kafka;
- the broker can never take this record (too large, or any non-retriable error): retrying would loop on it
  forever. A warning that cannot be published is dead-lettered with its reason (the dead letter is bounded,
  so it fits); a dead letter that cannot be published is logged and counted, and the worker goes on.

Either way one record can neither crash the worker nor stop it.
"""

from __future__ import annotations

import asyncio
import logging

import orjson
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from ..evidence.hashing import EventSource
from ..sinks.base import RetryPolicy, Sleep
from .deadletter import DeadLetter, Origin
from .handler import Outcome

log = logging.getLogger(__name__)

WARNING_UNPUBLISHABLE = "warning_unpublishable"
SEND_RETRY = RetryPolicy(initial_s=0.1, max_s=5.0)
EVIDENCE_HEADER = "fundflow.evidence"       # the cited events: compact JSON, values in base64
RULE_HEADER = "fundflow.rule"               # the rule's canonical text at the warning's version
DETECTOR_HEADER = "fundflow.detector"       # the worker's detector settings (window, lateness, tracer, version)
# The evidence header is kept under this many bytes so the record stays far below the broker's 1 MB limit next to
# the largest warning: events past it are left out and counted ("omitted"), never the warning itself.
EVIDENCE_HEADER_BUDGET = 400_000


# Refusals of the record itself: sending the same bytes again can only fail again.
_RECORD_REFUSALS = frozenset({"MessageSizeTooLargeError", "RecordTooLargeError", "RecordListTooLargeError",
                              "CorruptRecordException", "InvalidMessageError", "InvalidTimestampError"})


def is_permanent(exc: BaseException) -> bool:
    """True when no retry can make this send succeed: the broker refused the record itself (too large,
    invalid), or the failure is not Kafka's at all (a value that cannot be sent). Every other Kafka error, a
    timeout or an unreachable or leaderless broker, passes: waiting for the cluster is always right. Looked up
    along the cause chain, since Faust wraps the client's error in ProducerSendError."""
    seen: BaseException | None = exc
    kafka_error = False
    while seen is not None:
        if type(seen).__name__ in _RECORD_REFUSALS:
            return True
        kafka_error = kafka_error or _is_kafka_error(seen)
        seen = seen.__cause__ or seen.__context__
    return not kafka_error and not isinstance(exc, (asyncio.TimeoutError, ConnectionError, OSError))


def _is_kafka_error(exc: BaseException) -> bool:
    return any(cls.__name__ in ("KafkaError", "ProducerSendError") for cls in type(exc).__mro__)


@dataclass
class Publisher:
    """`publish(outcome)` puts the outcome's warnings and dead letter in Kafka; see the module docstring."""

    warnings_topic: Any
    deadletter_topic: Any
    sleep: Sleep = asyncio.sleep
    policy: RetryPolicy = SEND_RETRY
    unpublishable_warnings: int = 0       # dead-lettered because the outbox could not take them
    unpublishable_dead_letters: int = 0   # lost to the dead-letter topic too (logged with their coordinates)
    send_retries: int = 0
    detector_settings: str = ""           # sent with every warning that carries evidence (DETECTOR_HEADER)

    async def publish(self, outcome: Outcome, wait: bool = True) -> list[Awaitable[None]]:
        """Send every record of the outcome now. With `wait` each one is acknowledged before this returns;
        without, the acknowledgements come back as awaitables that never raise (a batch awaits them together)."""
        confirmations: list[Awaitable[None]] = []
        origin = outcome.origin or Origin("", -1, -1)
        for number, warning in enumerate(outcome.warnings):
            key, value = warning.warning_id.encode(), warning.to_json()
            headers = evidence_headers(outcome, number, self.detector_settings)
            started = await self._start(self.warnings_topic, key, value, headers)
            confirmation = self._finish(self.warnings_topic, key, value, headers, started,
                                        on_refused=self._dead_letter_warning(key, value, origin))
            if wait:
                await confirmation
            else:       # a task: it completes (or retries) even if the caller's batch is abandoned
                confirmations.append(asyncio.ensure_future(confirmation))
        if outcome.dead_letter is not None:
            await self.send_dead_letter(outcome.dead_letter)
        return confirmations

    async def send_dead_letter(self, letter: DeadLetter) -> None:
        async def lost(exc: BaseException) -> None:
            self.unpublishable_dead_letters += 1
            log.error("could not publish the dead letter of %s[%d]@%d (%s: %s): %s", letter.origin.topic,
                      letter.origin.partition, letter.origin.offset, letter.reason, letter.error[:200],
                      _describe(exc))

        key, value, headers = letter.bounded_key(), letter.bounded_value(), letter.headers()
        started = await self._start(self.deadletter_topic, key, value, headers)
        await self._finish(self.deadletter_topic, key, value, headers, started, on_refused=lost)

    def _dead_letter_warning(self, key: bytes, value: bytes, origin: Origin) -> Callable[[BaseException], Awaitable[None]]:
        async def refused(exc: BaseException) -> None:
            self.unpublishable_warnings += 1
            log.error("warning %s could not be published (%s); dead-lettered", key.decode(errors="replace"),
                      _describe(exc))
            await self.send_dead_letter(DeadLetter(key=key, value=value, reason=WARNING_UNPUBLISHABLE,
                                                   error=f"the warnings topic refused it: {_describe(exc)}",
                                                   origin=origin))
        return refused

    @staticmethod
    async def _start(topic: Any, key: bytes | None, value: bytes | None,
                     headers: list[tuple[str, bytes]] | None) -> tuple[Any, BaseException | None]:
        """Hand the record to the producer: (the acknowledgement to await, None) or (None, why it failed)."""
        kwargs: dict[str, Any] = {"key": key, "value": value}
        if headers is not None:
            kwargs["headers"] = headers
        try:
            return await topic.send(**kwargs), None
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - classified by `_finish`: retried or refused, never raised
            return None, exc

    async def _finish(self, topic: Any, key: bytes | None, value: bytes | None,
                      headers: list[tuple[str, bytes]] | None, started: tuple[Any, BaseException | None],
                      on_refused: Callable[[BaseException], Awaitable[None]]) -> None:
        """Wait for the broker's acknowledgement, sending again after a transient failure, or hand a permanent
        refusal to `on_refused`."""
        ack, error = started
        attempt = 0
        while True:
            if error is None:
                try:
                    await ack
                    return
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 - see above
                    error = exc
            if is_permanent(error):
                await on_refused(error)
                return
            self.send_retries += 1
            wait = self.policy.delay(attempt)
            attempt += 1
            log.warning("send to %s failed (attempt %d), retrying in %.2fs: %s", _topic_name(topic), attempt,
                        wait, _describe(error))
            await self.sleep(wait)
            ack, error = await self._start(topic, key, value, headers)


def evidence_headers(outcome: Outcome, number: int, detector_settings: str = "") -> list[tuple[str, bytes]] | None:
    """The evidence, rule and detector headers of the outcome's warning `number`, or None without an evidence
    index."""
    if not outcome.sources and not outcome.rule_texts:
        return None
    sources = outcome.sources[number] if number < len(outcome.sources) else ()
    rule_text = outcome.rule_texts[number] if number < len(outcome.rule_texts) else ""
    return [(EVIDENCE_HEADER, encode_evidence(sources)), (RULE_HEADER, rule_text.encode()),
            (DETECTOR_HEADER, detector_settings.encode())]


def encode_evidence(sources: tuple[EventSource, ...], budget: int = EVIDENCE_HEADER_BUDGET) -> bytes:
    events, used, omitted = [], 0, 0
    for source in sources:
        item = orjson.dumps(source.to_dict())
        if used + len(item) > budget:
            omitted += 1
            continue
        events.append(orjson.Fragment(item))
        used += len(item) + 1
    return orjson.dumps({"events": events, "omitted": omitted})


def decode_evidence(raw: bytes | None) -> tuple[tuple[EventSource, ...], int]:
    """(events, how many were omitted) from an evidence header; ValueError when it is not one."""
    if not raw:
        return (), 0
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"evidence header is not JSON: {str(exc)[:200]}") from None
    if not isinstance(data, dict) or not isinstance(data.get("events"), list):
        raise ValueError("evidence header: expected an object with an `events` list")
    omitted = data.get("omitted", 0)
    return tuple(EventSource.from_dict(item) for item in data["events"]), int(omitted) if isinstance(omitted, int) else 0


def _describe(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    cause = exc.__cause__
    if cause is not None:
        text += f" (caused by {type(cause).__name__}: {cause})"
    return text[:500]


def _topic_name(topic: Any) -> str:
    getter = getattr(topic, "get_topic_name", None)
    return getter() if callable(getter) else str(topic)
