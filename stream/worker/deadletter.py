"""The dead-letter record: the refused message exactly as it arrived, plus headers saying why and from where.

The convention follows Kafka Connect's DLQ: the value and key are the original bytes (so the message can be
fixed and replayed by hand), and the diagnosis travels in headers that tools can filter on without parsing
the payload.

A dead letter always fits in a Kafka message, whatever arrived: a value over `MAX_VALUE_BYTES` keeps its first
`KEPT_PREFIX_BYTES`, and the headers carry the original's size and SHA-256 beside its topic, partition and
offset, so the full record can still be found in the input topic and proven to be the one refused. Keys and
the original headers are bounded the same way. Without this, the letter of a refused 1 MB message is itself
too large to publish, and the refusal is lost.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

import msgspec

HEADER_PREFIX = "fundflow."
REASON_HEADER = "fundflow.reason"
ERROR_HEADER = "fundflow.error"
TOPIC_HEADER = "fundflow.topic"
PARTITION_HEADER = "fundflow.partition"
OFFSET_HEADER = "fundflow.offset"

TRUNCATED_HEADER = "fundflow.truncated"              # "value", "key" or "value,key"
ORIGINAL_SIZE_HEADER = "fundflow.original_size"       # bytes of the original value
ORIGINAL_SHA256_HEADER = "fundflow.original_sha256"   # hex SHA-256 of the original value
ORIGINAL_KEY_SIZE_HEADER = "fundflow.original_key_size"
ORIGINAL_KEY_SHA256_HEADER = "fundflow.original_key_sha256"
DROPPED_HEADERS_HEADER = "fundflow.dropped_headers"   # original headers left out to keep the letter bounded

DETECTOR_ERROR = "detector_error"
MAX_ERROR_BYTES = 2000  # the error text is for humans; a runaway message must not bloat the topic
MAX_VALUE_BYTES = 131_072       # values up to this are kept whole (every event the parser can accept is smaller)
KEPT_PREFIX_BYTES = 16_384      # what is kept of a larger value
MAX_KEY_BYTES = 1024
MAX_ORIGINAL_HEADER_BYTES = 16_384
# Worst case: 16 KiB value + 1 KiB key + 16 KiB original headers + 2 KiB error + the fixed headers: far below
# the producer's 1,000,000-byte request limit.


class Origin(msgspec.Struct, frozen=True, gc=False):
    """Where a message was read: enough to find it again in the input topic. `timestamp` is the record's Kafka
    timestamp (epoch ms, -1 when unknown): part of the log, so detection may read it and stay replayable."""

    topic: str
    partition: int
    offset: int
    timestamp: int = -1


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One refused message, ready to be published to the dead-letter topic."""

    key: bytes | None
    value: bytes | None
    reason: str
    error: str
    origin: Origin
    original_headers: tuple[tuple[str, bytes], ...] = ()

    def bounded_key(self) -> bytes | None:
        key = self.key
        return key if key is None or len(key) <= MAX_KEY_BYTES else key[:MAX_KEY_BYTES]

    def bounded_value(self) -> bytes | None:
        value = self.value
        return value if value is None or len(value) <= MAX_VALUE_BYTES else value[:KEPT_PREFIX_BYTES]

    def headers(self) -> list[tuple[str, bytes]]:
        """Original headers (minus any earlier diagnosis, within a byte budget) followed by this refusal's
        diagnosis, and the size and hash of whatever had to be cut."""
        kept: list[tuple[str, bytes]] = []
        budget, dropped = MAX_ORIGINAL_HEADER_BYTES, 0
        for name, value in self.original_headers:
            if name.startswith(HEADER_PREFIX):
                continue
            cost = len(name) + len(value)
            if cost > budget:
                dropped += 1
                continue
            budget -= cost
            kept.append((name, value))
        diagnosis = [
            (REASON_HEADER, self.reason.encode()),
            (ERROR_HEADER, self.error.encode("utf-8", "replace")[:MAX_ERROR_BYTES]),
            (TOPIC_HEADER, self.origin.topic.encode()),
            (PARTITION_HEADER, str(self.origin.partition).encode()),
            (OFFSET_HEADER, str(self.origin.offset).encode()),
        ]
        truncated = []
        if self.value is not None and len(self.value) > MAX_VALUE_BYTES:
            truncated.append("value")
            diagnosis += [(ORIGINAL_SIZE_HEADER, str(len(self.value)).encode()),
                          (ORIGINAL_SHA256_HEADER, hashlib.sha256(self.value).hexdigest().encode())]
        if self.key is not None and len(self.key) > MAX_KEY_BYTES:
            truncated.append("key")
            diagnosis += [(ORIGINAL_KEY_SIZE_HEADER, str(len(self.key)).encode()),
                          (ORIGINAL_KEY_SHA256_HEADER, hashlib.sha256(self.key).hexdigest().encode())]
        if truncated:
            diagnosis.append((TRUNCATED_HEADER, ",".join(truncated).encode()))
        if dropped:
            diagnosis.append((DROPPED_HEADERS_HEADER, str(dropped).encode()))
        return kept + diagnosis


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
