"""The early warning (docs/architecture.md §5): what the detector emits and every sink stores or pages.

`warning_id` is a hash of what the warning is about (rule id, rule version, subject), so re-processing the
same events yields the same id and every sink can drop duplicates.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Mapping

import orjson

from .money import format_minor, parse_amount_minor
from .nesting import nested_deeper_than
from .timefmt import format_ts, parse_rfc3339_ms

SEVERITY_RANK = {"info": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}

# A warning's size is bounded by construction, whatever the events: ids are at most 256 characters (the event
# contract), and every list and text below is capped here, with a count of what was cut in
# evidence["truncated"]. The worst case is a few hundred kilobytes, well inside one Kafka message.
MAX_LIST_ITEMS = 200              # accounts, loan_ids, txn_ids and every list inside the evidence
MAX_SUMMARY_CHARS = 1000
MAX_EVIDENCE_TEXT = 1024          # any string inside the evidence
TRUNCATED_KEY = "truncated"


def capped(items: tuple[str, ...], name: str, cut: dict[str, int]) -> tuple[str, ...]:
    """At most MAX_LIST_ITEMS of `items`, noting in `cut` how many were left out under `name`."""
    if len(items) <= MAX_LIST_ITEMS:
        return items
    cut[name] = len(items) - MAX_LIST_ITEMS
    return items[:MAX_LIST_ITEMS]


def capped_evidence(evidence: Mapping[str, Any], cut: dict[str, int]) -> dict[str, Any]:
    """The evidence with every list and string capped. Recursive: the depth of the evidence is fixed by the kinds
    that build it, never by input."""
    def cap(value: Any, path: str) -> Any:
        if isinstance(value, str) and len(value) > MAX_EVIDENCE_TEXT:
            cut[path] = cut.get(path, 0) + len(value) - MAX_EVIDENCE_TEXT
            return value[:MAX_EVIDENCE_TEXT]
        if isinstance(value, (list, tuple)):
            if len(value) > MAX_LIST_ITEMS:
                cut[path] = len(value) - MAX_LIST_ITEMS
            return [cap(item, path) for item in value[:MAX_LIST_ITEMS]]
        if isinstance(value, Mapping):
            return {key: cap(item, f"{path}.{key}") for key, item in value.items()}
        return value
    return {key: cap(value, f"evidence.{key}") for key, value in evidence.items()}


def make_warning_id(rule_id: str, rule_version: str, subject: str) -> str:
    digest = hashlib.sha256(f"{rule_id}\x1f{rule_version}\x1f{subject}".encode()).hexdigest()
    return f"w-{digest[:24]}"


@dataclass(frozen=True, slots=True)
class EarlyWarning:
    warning_id: str
    rule_id: str
    rule_version: str
    kind: str
    severity: str
    score: float
    subject: str
    accounts: tuple[str, ...]
    loan_ids: tuple[str, ...]
    txn_ids: tuple[str, ...]
    amount: int                     # minor units
    currency: str
    first_ts: int                   # epoch ms of the earliest event in the evidence
    event_ts: int                   # epoch ms of the event that completed the pattern
    detected_at: int                # epoch ms from the injected clock
    summary: str
    evidence: Mapping[str, Any] = field(default_factory=dict, compare=False)
    notify: tuple[str, ...] = ()    # targets named by the rule (e.g. "pager"); not part of the §5 JSON

    @property
    def severity_rank(self) -> int:
        return SEVERITY_RANK[self.severity]

    def to_dict(self) -> dict[str, Any]:
        return {
            "warning_id": self.warning_id, "rule_id": self.rule_id, "rule_version": self.rule_version,
            "kind": self.kind, "severity": self.severity, "score": round(self.score, 4),
            "subject": self.subject, "accounts": list(self.accounts), "loan_ids": list(self.loan_ids),
            "txn_ids": list(self.txn_ids), "amount": format_minor(self.amount), "currency": self.currency,
            "first_ts": format_ts(self.first_ts), "event_ts": format_ts(self.event_ts),
            "detected_at": format_ts(self.detected_at), "summary": self.summary,
            "evidence": dict(self.evidence), "notify": list(self.notify),
        }

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict(), option=orjson.OPT_SORT_KEYS)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "EarlyWarning":
        """A warning from its JSON object. Anything in the outbox is checked as untrusted input: ValueError with
        a bounded message names the first field that is missing or of the wrong type."""
        if not isinstance(data, Mapping):
            raise ValueError(f"expected a JSON object, got {type(data).__name__}")
        amount = _field(data, "amount", (str, int))
        return cls(
            warning_id=_text(data, "warning_id"), rule_id=_text(data, "rule_id"),
            rule_version=str(_field(data, "rule_version", (str, int))), kind=_text(data, "kind"),
            severity=_severity(data), score=_score(data),
            subject=_text(data, "subject"), accounts=_texts(data, "accounts"), loan_ids=_texts(data, "loan_ids"),
            txn_ids=_texts(data, "txn_ids"),
            amount=parse_amount_minor(amount) if amount not in ("0", "0.00", 0) else 0,
            currency=_text(data, "currency"),
            first_ts=_instant(data, "first_ts"), event_ts=_instant(data, "event_ts"),
            detected_at=_instant(data, "detected_at"), summary=_text(data, "summary", empty=True),
            evidence=_evidence(data), notify=_texts(data, "notify", optional=True),
        )

    @classmethod
    def from_json(cls, raw: bytes | str) -> "EarlyWarning":
        if len(raw) > MAX_WARNING_BYTES:
            raise ValueError(f"{len(raw)} bytes; a warning is at most {MAX_WARNING_BYTES}")
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"not valid JSON ({str(exc)[:200]})") from None
        return cls.from_dict(data)


MAX_WARNING_BYTES = 1_000_000     # what the outbox can carry; warnings built here stay far below it
MAX_EVIDENCE_DEPTH = 16           # orjson refuses to encode deeper than 255; fundflow's own evidence is shallow


def _severity(data: Mapping[str, Any]) -> str:
    severity = _text(data, "severity")
    if severity not in SEVERITY_RANK:
        raise ValueError(f"expected a severity among {', '.join(SEVERITY_RANK)}, got {severity[:40]!r}")
    return severity


def _score(data: Mapping[str, Any]) -> float:
    score = float(_field(data, "score", (int, float)))
    if score != score or score in (float("inf"), float("-inf")):
        raise ValueError("field 'score' must be a finite number")
    return score


def _field(data: Mapping[str, Any], name: str, types: tuple[type, ...]) -> Any:
    if name not in data:
        raise ValueError(f"missing field {name!r}")
    value = data[name]
    if isinstance(value, bool) or not isinstance(value, types):
        raise ValueError(f"field {name!r} must be {' or '.join(t.__name__ for t in types)}, "
                         f"got {type(value).__name__}")
    return value


def _text(data: Mapping[str, Any], name: str, *, empty: bool = False) -> str:
    value = _field(data, name, (str,))
    if not empty and not value:
        raise ValueError(f"field {name!r} must not be empty")
    return value


def _instant(data: Mapping[str, Any], name: str) -> int:
    ms = parse_rfc3339_ms(_text(data, name)[:64])
    if ms < 0:
        raise ValueError(f"field {name!r} is before 1970")
    return ms


def _texts(data: Mapping[str, Any], name: str, *, optional: bool = False) -> tuple[str, ...]:
    if optional and data.get(name) is None:
        return ()
    value = _field(data, name, (list,))
    if not all(isinstance(item, str) for item in value):
        raise ValueError(f"field {name!r} must be a list of strings")
    return tuple(value)


def _evidence(data: Mapping[str, Any]) -> Mapping[str, Any]:
    evidence = data.get("evidence") or {}
    if not isinstance(evidence, Mapping):
        raise ValueError(f"field 'evidence' must be an object, got {type(evidence).__name__}")
    if nested_deeper_than(evidence.values(), MAX_EVIDENCE_DEPTH):
        raise ValueError(f"field 'evidence' is nested more than {MAX_EVIDENCE_DEPTH} levels deep")
    return evidence
