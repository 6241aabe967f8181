"""What the pager webhook receives: the two payload formats, storm summaries, and the request signature.

Signature (when `webhook_secret` is set): the sender puts the current Unix time in seconds in
`X-Fundflow-Timestamp` and `sha256=` + hex(HMAC-SHA256(secret, timestamp + "." + raw body)) in
`X-Fundflow-Signature`. A receiver recomputes the HMAC over the exact bytes it received, compares in
constant time, and refuses timestamps more than a few minutes from its own clock, so a captured request
cannot be replayed later. Pure functions only: no HTTP here.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

import orjson

from ..model.timefmt import format_ts
from ..model.warning import SEVERITY_RANK, EarlyWarning

SIGNATURE_HEADER = "X-Fundflow-Signature"
TIMESTAMP_HEADER = "X-Fundflow-Timestamp"
WARNING_ID_HEADER = "X-Fundflow-Warning-Id"
SOURCE = "fundflow"
PAGERDUTY_SEVERITY = {"critical": "critical", "high": "error", "medium": "warning", "low": "info", "info": "info"}
PAGERDUTY_SUMMARY_MAX = 1024
SUMMARY_SAMPLE = 20  # warnings listed in full inside one storm summary page


@dataclass(frozen=True)
class StormSummary:
    """Warnings of one rule held back during one wall-clock minute, paged as one."""

    rule_id: str
    minute: int                           # epoch ms // 60_000
    warnings: tuple[EarlyWarning, ...]

    @property
    def dedup_key(self) -> str:
        return f"storm-{self.rule_id}-{self.minute}"

    @property
    def severity(self) -> str:
        return max((w.severity for w in self.warnings), key=SEVERITY_RANK.__getitem__)

    @property
    def text(self) -> str:
        start = format_ts(self.minute * 60_000)
        return (f"{len(self.warnings)} more warnings of rule {self.rule_id} in the minute from {start} "
                f"(page storm limit reached; grouped into this page)")

    def details(self) -> dict[str, Any]:
        return {"rule_id": self.rule_id, "minute_start": format_ts(self.minute * 60_000),
                "count": len(self.warnings), "warning_ids": [w.warning_id for w in self.warnings],
                "warnings": [w.to_dict() for w in self.warnings[:SUMMARY_SAMPLE]]}


def generic_body(warning: EarlyWarning) -> bytes:
    """The warning's docs/architecture.md §5 JSON, exactly as in the outbox."""
    return warning.to_json()


def generic_summary_body(summary: StormSummary) -> bytes:
    return orjson.dumps({"type": "storm_summary", "dedup_key": summary.dedup_key, "severity": summary.severity,
                         "summary": summary.text, **summary.details()}, option=orjson.OPT_SORT_KEYS)


def pagerduty_body(warning: EarlyWarning, routing_key: str) -> bytes:
    """A PagerDuty Events API v2 trigger; dedup_key = warning id, so PagerDuty folds repeats too."""
    return orjson.dumps({
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": warning.warning_id,
        "payload": {
            "summary": warning.summary[:PAGERDUTY_SUMMARY_MAX] or f"{warning.rule_id} on {warning.subject}",
            "severity": PAGERDUTY_SEVERITY[warning.severity],
            "source": SOURCE,
            "timestamp": format_ts(warning.detected_at),
            "component": warning.subject,
            "group": warning.rule_id,
            "class": warning.kind,
            "custom_details": warning.to_dict(),
        },
    }, option=orjson.OPT_SORT_KEYS)


def pagerduty_summary_body(summary: StormSummary, routing_key: str, now_ms: int) -> bytes:
    return orjson.dumps({
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": summary.dedup_key,
        "payload": {
            "summary": summary.text[:PAGERDUTY_SUMMARY_MAX],
            "severity": PAGERDUTY_SEVERITY[summary.severity],
            "source": SOURCE,
            "timestamp": format_ts(now_ms),
            "component": summary.rule_id,
            "group": summary.rule_id,
            "class": "storm_summary",
            "custom_details": summary.details(),
        },
    }, option=orjson.OPT_SORT_KEYS)


def sign(secret: str, timestamp_s: int, body: bytes) -> str:
    digest = hmac.new(secret.encode(), str(timestamp_s).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def signed_headers(secret: str | None, now_ms: int, body: bytes) -> dict[str, str]:
    """Content-Type plus, when a secret is set, the timestamp and signature headers."""
    headers = {"Content-Type": "application/json"}
    if secret:
        timestamp_s = now_ms // 1000
        headers[TIMESTAMP_HEADER] = str(timestamp_s)
        headers[SIGNATURE_HEADER] = sign(secret, timestamp_s, body)
    return headers


def verify(secret: str, headers: dict[str, str], body: bytes, now_s: int, tolerance_s: int = 300) -> bool:
    """The receiver's check (also used by the tests): right HMAC over timestamp.body, fresh timestamp."""
    lowered = {k.lower(): v for k, v in headers.items()}
    timestamp, signature = lowered.get(TIMESTAMP_HEADER.lower()), lowered.get(SIGNATURE_HEADER.lower())
    if not timestamp or not signature or not timestamp.isdigit():
        return False
    if abs(now_s - int(timestamp)) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, int(timestamp), body), signature)

