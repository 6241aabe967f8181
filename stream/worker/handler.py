"""What the worker does with one input message, independent of Faust and Kafka.

Parse, validate, detect: the outcome is either warnings to publish or a dead letter to publish. Keeping
this free of the streaming framework means every path (good event, each bad input, a detector bug) is
tested as a plain function call, and the Faust agent is left with nothing but I/O.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Protocol, Sequence

from ..errors import EventError
from ..events import Event, parse_event
from ..warning import EarlyWarning
from .deadletter import DETECTOR_ERROR, DeadLetter, Origin

log = logging.getLogger(__name__)


class DetectorLike(Protocol):
    """The part of the detector the worker needs: feed an event, read the event-time watermark."""

    watermark: int | None

    def process(self, event: Event) -> Sequence[EarlyWarning]: ...


@dataclass(frozen=True, slots=True)
class Outcome:
    """Exactly one of: the warnings the event raised (possibly none), or the dead letter for the message."""

    event: Event | None = None
    warnings: tuple[EarlyWarning, ...] = ()
    dead_letter: DeadLetter | None = None


@dataclass
class MessageHandler:
    """Turns input messages into outcomes and counts them (read by health and metrics pages)."""

    detector: DetectorLike
    accepted: Counter = field(default_factory=Counter)      # per source topic
    refused: Counter = field(default_factory=Counter)       # per reason code
    warnings_raised: int = 0

    def handle(self, value: bytes | None, *, key: bytes | None, origin: Origin,
               headers: tuple[tuple[str, bytes], ...] = ()) -> Outcome:
        try:
            event = parse_event(value if value is not None else b"null", watermark=self.detector.watermark)
        except EventError as exc:
            return self._refuse(value, key, origin, headers, exc.reason, str(exc))
        try:
            warnings = tuple(self.detector.process(event))
        except Exception as exc:  # noqa: BLE001 - one poisonous event must not stop the stream
            log.exception("detector failed on event %s at %s[%d]@%d", event.event_id, origin.topic,
                          origin.partition, origin.offset)
            return self._refuse(value, key, origin, headers, DETECTOR_ERROR,
                                f"{type(exc).__name__}: {exc} (event_id {event.event_id!r})")
        self.accepted[origin.topic] += 1
        self.warnings_raised += len(warnings)
        return Outcome(event=event, warnings=warnings)

    def _refuse(self, value, key, origin, headers, reason: str, error: str) -> Outcome:
        self.refused[reason] += 1
        log.warning("dead-lettered %s[%d]@%d: %s", origin.topic, origin.partition, origin.offset, error)
        return Outcome(dead_letter=DeadLetter(key=key, value=value, reason=reason, error=error, origin=origin,
                                              original_headers=headers))
