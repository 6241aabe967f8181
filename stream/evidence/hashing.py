"""The hashes of the evidence chain, each over a canonical form that the store and a bundle both reproduce.

- warning_sha256: SHA-256 of the warning's canonical JSON, `EarlyWarning.to_json()` (sorted keys, compact),
  which a stored row gives back exactly (`stream.sinks.schema.row_to_warning_json`).
- events_sha256: SHA-256 of the canonical JSON list of the cited events' coordinates and value hashes, sorted
  by event id then coordinates: `[{"event_id", "offset", "partition", "topic", "value_sha256"}, ...]`.
- rule_sha256: SHA-256 of the rule's canonical text (UTF-8), as the loader keeps it on the rule.
- settings_sha256: SHA-256 of the worker's detector settings as canonical JSON (`detector_settings_text`).
- record_hash: SHA-256 of the canonical JSON list
  `[partition, seq, warning_id, warning_sha256, events_sha256, rule_sha256, settings_sha256, prev_hash]`.
- Merkle roots in the style of RFC 6962 (leaf = H(0x00 || leaf), node = H(0x01 || left || right), the split at
  the largest power of two below n), over the records' hashes in seq order.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import msgspec
import orjson

GENESIS = "0" * 64          # prev_hash of the first record of a partition
CHECKPOINT_DOMAIN = b"fundflow-evidence-checkpoint-v1\n"


def sha256_hex(data: bytes | str) -> str:
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


def canonical_json(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


class EventSource(msgspec.Struct, frozen=True, gc=False):
    """One cited input event: where it was read and its original bytes."""

    event_id: str
    topic: str
    partition: int
    offset: int
    value: bytes
    ts: int = -1             # its event time (epoch ms); not hashed, only for ordering and reports

    @property
    def value_sha256(self) -> str:
        return sha256_hex(self.value)

    def coordinates(self) -> dict[str, Any]:
        return {"event_id": self.event_id, "topic": self.topic, "partition": self.partition, "offset": self.offset,
                "value_sha256": self.value_sha256}

    def to_dict(self) -> dict[str, Any]:
        """The JSON form of a header, a bundle's events.jsonl line and an evidence row's content."""
        return {"event_id": self.event_id, "topic": self.topic, "partition": self.partition, "offset": self.offset,
                "ts": self.ts, "value": base64.b64encode(self.value).decode("ascii"),
                "value_sha256": self.value_sha256}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "EventSource":
        """ValueError when a field is missing or of the wrong type (a header or a bundle is untrusted input)."""
        try:
            value = base64.b64decode(str(data["value"]), validate=True)
            source = cls(event_id=_str(data["event_id"]), topic=_str(data["topic"]),
                         partition=_int(data["partition"]), offset=_int(data["offset"]), value=value,
                         ts=_int(data.get("ts", -1)))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not an evidence event: {type(exc).__name__}: {str(exc)[:200]}") from None
        return source


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected text, got {type(value).__name__}")
    return value


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected an integer, got {type(value).__name__}")
    return value


def event_order(source: EventSource) -> tuple:
    return (source.event_id, source.topic, source.partition, source.offset)


def events_sha256(coordinates: Iterable[Mapping[str, Any]]) -> str:
    """Over the events' coordinates (dicts with event_id, topic, partition, offset, value_sha256)."""
    items = sorted(({"event_id": c["event_id"], "topic": c["topic"], "partition": int(c["partition"]),
                     "offset": int(c["offset"]), "value_sha256": c["value_sha256"]} for c in coordinates),
                   key=lambda c: (c["event_id"], c["topic"], c["partition"], c["offset"]))
    return sha256_hex(canonical_json(items))


def sources_sha256(sources: Iterable[EventSource]) -> str:
    return events_sha256(source.coordinates() for source in sources)


def warning_sha256(canonical_warning: bytes) -> str:
    return sha256_hex(canonical_warning)


def rule_sha256(text: str) -> str:
    return sha256_hex(text.encode("utf-8"))


settings_sha256 = rule_sha256


def detector_settings_text(window_ms: int, lateness_ms: int, tracer_policy: str, trace_inflows_above: int | None,
                           fundflow_version: str, identity_fields: tuple[str, ...] = ()) -> str:
    """The settings that shape what the detector sees, as the worker records them beside every warning
    (`identity_fields` only when set, so the records of deployments without it keep their bytes)."""
    settings = {"window_ms": int(window_ms), "allowed_lateness_ms": int(lateness_ms),
                "tracer_policy": tracer_policy, "trace_inflows_above": trace_inflows_above,
                "fundflow_version": fundflow_version}
    if identity_fields:
        settings["identity_fields"] = list(identity_fields)
    return canonical_json(settings).decode()


def record_hash(partition: int, seq: int, warning_id: str, warning_digest: str, events_digest: str,
                rule_digest: str, settings_digest: str, prev_hash: str) -> str:
    return sha256_hex(canonical_json([int(partition), int(seq), warning_id, warning_digest, events_digest,
                                      rule_digest, settings_digest, prev_hash]))


@dataclass(frozen=True, slots=True)
class ChainRecord:
    partition: int
    seq: int
    warning_id: str
    warning_sha256: str
    events_sha256: str
    rule_sha256: str
    settings_sha256: str
    prev_hash: str
    record_hash: str
    inserted_ms: int = 0

    def expected_hash(self) -> str:
        return record_hash(self.partition, self.seq, self.warning_id, self.warning_sha256, self.events_sha256,
                           self.rule_sha256, self.settings_sha256, self.prev_hash)

    def to_dict(self) -> dict[str, Any]:
        return {"partition": self.partition, "seq": self.seq, "warning_id": self.warning_id,
                "warning_sha256": self.warning_sha256, "events_sha256": self.events_sha256,
                "rule_sha256": self.rule_sha256, "settings_sha256": self.settings_sha256,
                "prev_hash": self.prev_hash, "record_hash": self.record_hash,
                "inserted_ms": self.inserted_ms}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ChainRecord":
        try:
            return cls(partition=int(data["partition"]), seq=int(data["seq"]), warning_id=str(data["warning_id"]),
                       warning_sha256=str(data["warning_sha256"]), events_sha256=str(data["events_sha256"]),
                       rule_sha256=str(data["rule_sha256"]), settings_sha256=str(data["settings_sha256"]),
                       prev_hash=str(data["prev_hash"]),
                       record_hash=str(data["record_hash"]), inserted_ms=int(data.get("inserted_ms") or 0))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a chain record: {type(exc).__name__}: {str(exc)[:200]}") from None


def next_record(partition: int, seq: int, warning_id: str, warning_digest: str, events_digest: str,
                rule_digest: str, settings_digest: str, prev_hash: str, inserted_ms: int = 0) -> ChainRecord:
    return ChainRecord(partition, seq, warning_id, warning_digest, events_digest, rule_digest, settings_digest,
                       prev_hash, record_hash(partition, seq, warning_id, warning_digest, events_digest, rule_digest,
                                              settings_digest, prev_hash), inserted_ms)


# -- Merkle trees (RFC 6962 §2.1) ------------------------------------------------------------------------------

def _leaf(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def merkle_root(leaves: Sequence[bytes]) -> bytes:
    """The Merkle tree hash of `leaves`; iterative over levels so a long checkpoint cannot recurse deeply."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    # RFC 6962's split (largest power of two below n) gives the same tree as pairing left to right and carrying
    # an odd last node up unchanged, level by level.
    level = [_leaf(leaf) for leaf in leaves]
    while len(level) > 1:
        paired = [_node(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]


def records_root(records: Sequence[ChainRecord]) -> str:
    return merkle_root([bytes.fromhex(record.record_hash) for record in records]).hex()


def checkpoint_message(partition: int, first_seq: int, last_seq: int, root_hex: str, signed_ms: int) -> bytes:
    """What a checkpoint's signature covers."""
    return CHECKPOINT_DOMAIN + canonical_json({"partition": int(partition), "first_seq": int(first_seq),
                                               "last_seq": int(last_seq), "merkle_root": root_hex,
                                               "signed_ms": int(signed_ms)})
