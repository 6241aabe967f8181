"""What the worker does with one input message, independent of Faust and Kafka.

Parse, validate, detect: the outcome is either warnings to publish or a dead letter to publish. Keeping
this free of the streaming framework means every path (good event, each bad input, a detector bug) is
tested as a plain function call, and the Faust agent is left with nothing but I/O.

Parsing and detection are separate steps (`parse`, then `detect`) because the worker holds valid events
in the event-time aligner between the two: a bad message is dead-lettered the moment it arrives, a good
one reaches the detector only when every input partition has moved past its event time.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Protocol, Sequence

import msgspec

from ..errors import EventError
from ..model.events import Event, parse_event
from ..model.warning import EarlyWarning
from ..evidence.hashing import EventSource
from .deadletter import DETECTOR_ERROR, DeadLetter, Origin
from .evidence_index import EvidenceIndex

log = logging.getLogger(__name__)


class DetectorLike(Protocol):
    """The part of the detector the worker needs: feed an event, read the event-time watermark."""

    watermark: int | None

    def process(self, event: Event, detected_at: int | None = None) -> Sequence[EarlyWarning]: ...


class Outcome(msgspec.Struct, frozen=True):
    """Exactly one of: the warnings the event raised (possibly none), or the dead letter for the message."""

    event: Event | None = None
    warnings: tuple[EarlyWarning, ...] = ()
    dead_letter: DeadLetter | None = None
    origin: Origin | None = None       # the input record the outcome is about
    # Per warning (same order), with an evidence index: the cited events' original bytes and coordinates, and
    # the canonical text of the rule at the warning's version ("" when the running rules no longer have it).
    sources: tuple[tuple[EventSource, ...], ...] = ()
    rule_texts: tuple[str, ...] = ()


class Accepted(msgspec.Struct, frozen=True):
    """A parsed event waiting in the aligner, with what a dead letter would need if the detector fails on it.

    `arrived` is the monotonic time the message reached the worker, for the processing-latency histogram.
    """

    event: Event
    value: bytes | None
    key: bytes | None
    origin: Origin
    headers: tuple[tuple[str, bytes], ...] = ()
    arrived: float = 0.0


@dataclass
class MessageHandler:
    """Turns input messages into outcomes and counts them (read by health and metrics pages)."""

    detector: DetectorLike
    accepted: Counter = field(default_factory=Counter)      # per source topic
    refused: Counter = field(default_factory=Counter)       # per reason code
    warnings_raised: int = 0
    evidence: EvidenceIndex | None = None    # the window's original events, for the evidence of warnings

    def handle(self, value: bytes | None, *, key: bytes | None, origin: Origin,
               headers: tuple[tuple[str, bytes], ...] = ()) -> Outcome:
        """Parse and detect in one step (no alignment): for callers that feed events in their final order."""
        parsed = self.parse(value, key=key, origin=origin, headers=headers, watermark=self.detector.watermark)
        if isinstance(parsed, Outcome):
            return parsed
        return self.detect(parsed)

    def parse(self, value: bytes | None, *, key: bytes | None, origin: Origin,
              headers: tuple[tuple[str, bytes], ...] = (), arrived: float = 0.0,
              watermark: int | None = None) -> "Accepted | Outcome":
        """A valid event wrapped with where it came from, or the dead-letter outcome of a bad message.

        `watermark`, when given, bounds how far ahead an event may claim to be. The worker passes none and
        leaves that judgement to its `JumpGuard`, which can tell a wrong timestamp from a real jump.
        """
        try:
            event = parse_event(value if value is not None else b"null", watermark=watermark)
        except EventError as exc:
            return self._refuse(value, key, origin, headers, exc.reason, str(exc))
        return Accepted(event=event, value=value, key=key, origin=origin, headers=headers, arrived=arrived)

    def parse_quietly(self, value: bytes | None, *, key: bytes | None, origin: Origin,
                      headers: tuple[tuple[str, bytes], ...] = ()) -> "Accepted | None":
        """For replays of the log: a bad record was dead-lettered when it was first read, so it is skipped
        here without a second letter or a second count. Far-ahead timestamps are the jump guard's to judge."""
        try:
            event = parse_event(value if value is not None else b"null")
        except EventError:
            return None
        return Accepted(event=event, value=value, key=key, origin=origin, headers=headers)

    def detect(self, item: "Accepted") -> Outcome:
        """Run the detector on one parsed event; a detector failure dead-letters that event only."""
        event, origin = item.event, item.origin
        try:
            warnings = tuple(self.detector.process(
                event, detected_at=origin.timestamp if origin.timestamp >= 0 else None))
        except EventError as exc:          # too old for the window: refused, with its reason, like a bad message
            return self._refuse(item.value, item.key, origin, item.headers, exc.reason, str(exc))
        except Exception as exc:  # noqa: BLE001 - one poisonous event must not stop the stream
            log.exception("detector failed on event %s at %s[%d]@%d", event.event_id, origin.topic,
                          origin.partition, origin.offset)
            return self._refuse(item.value, item.key, origin, item.headers, DETECTOR_ERROR,
                                f"{type(exc).__name__}: {exc} (event_id {event.event_id!r})")
        self.accepted[origin.topic] += 1
        self.warnings_raised += len(warnings)
        index = self.evidence
        if index is None:
            return Outcome(event=event, warnings=warnings, origin=origin)
        index.record(event, item.value, origin)
        index.expire(self.detector.watermark)
        if not warnings:
            return Outcome(event=event, origin=origin)
        return Outcome(event=event, warnings=warnings, origin=origin,
                       sources=tuple(index.sources_for(w) for w in warnings),
                       rule_texts=tuple(self._rule_text(w) for w in warnings))

    def _rule_text(self, warning: EarlyWarning) -> str:
        rules = getattr(self.detector, "rules", None)
        for rule in getattr(rules, "rules", ()):
            if rule.id == warning.rule_id and rule.version == warning.rule_version:
                return getattr(rule, "canonical_text", "")
        return ""

    def refuse(self, item: "Accepted", error: EventError) -> Outcome:
        """Dead-letter an event that parsed but was refused later (a timestamp the stream never confirmed)."""
        return self._refuse(item.value, item.key, item.origin, item.headers, error.reason, str(error))

    def _refuse(self, value, key, origin, headers, reason: str, error: str) -> Outcome:
        self.refused[reason] += 1
        log.warning("dead-lettered %s[%d]@%d: %s", origin.topic, origin.partition, origin.offset, error)
        return Outcome(dead_letter=DeadLetter(key=key, value=value, reason=reason, error=error, origin=origin,
                                              original_headers=headers), origin=origin)
