"""The dead-letter record: the refused message exactly as it arrived, plus headers saying why and from where.

The convention follows Kafka Connect's DLQ: the value and key are the original bytes (so the message can be
fixed and replayed by hand), and the diagnosis travels in headers that tools can filter on without parsing
the payload.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

HEADER_PREFIX = "fundflow."
REASON_HEADER = "fundflow.reason"
ERROR_HEADER = "fundflow.error"
TOPIC_HEADER = "fundflow.topic"
PARTITION_HEADER = "fundflow.partition"
OFFSET_HEADER = "fundflow.offset"

DETECTOR_ERROR = "detector_error"
MAX_ERROR_BYTES = 2000  # the error text is for humans; a runaway message must not bloat the topic


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a message was read: enough to find it again in the input topic."""

    topic: str
    partition: int
    offset: int


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One refused message, ready to be published to the dead-letter topic."""

    key: bytes | None
    value: bytes | None
    reason: str
    error: str
    origin: Origin
    original_headers: tuple[tuple[str, bytes], ...] = ()

    def headers(self) -> list[tuple[str, bytes]]:
        """Original headers (minus any earlier diagnosis) followed by this refusal's diagnosis."""
        kept = [(k, v) for k, v in self.original_headers if not k.startswith(HEADER_PREFIX)]
        return kept + [
            (REASON_HEADER, self.reason.encode()),
            (ERROR_HEADER, self.error.encode("utf-8", "replace")[:MAX_ERROR_BYTES]),
            (TOPIC_HEADER, self.origin.topic.encode()),
            (PARTITION_HEADER, str(self.origin.partition).encode()),
            (OFFSET_HEADER, str(self.origin.offset).encode()),
        ]


def normalize_headers(headers: Mapping[str, bytes] | Sequence[tuple[str, bytes]] | None
                      ) -> tuple[tuple[str, bytes], ...]:
    """Kafka clients hand headers over as a dict or a list of pairs; keep them as a tuple of pairs."""
    if not headers:
        return ()
    pairs: Iterable = headers.items() if isinstance(headers, Mapping) else headers
    return tuple((str(k), bytes(v) if v is not None else b"") for k, v in pairs)


def headers_dict(headers: Mapping[str, bytes] | Sequence[tuple[str, bytes]] | None) -> dict[str, str]:
    """Headers as text, last value wins: for reading the diagnosis back (tests, tools)."""
    return {k: v.decode("utf-8", "replace") for k, v in normalize_headers(headers)}
