"""Pager payloads, signatures and Retry-After parsing: pure functions, no HTTP."""

from __future__ import annotations

import json

import pytest

from stream.sinks import payloads
from stream.sinks.pager import PagerConfig, retry_after_seconds
from stream.settings import load_settings
from stream.model.warning import EarlyWarning, make_warning_id

NOW_MS = 1_772_448_100_000  # 2026-03-02T10:41:40Z


def _warning(n: int = 1, severity: str = "high") -> EarlyWarning:
    return EarlyWarning(
        warning_id=make_warning_id("rapid-cashout", "3", f"L-{n}"), rule_id="rapid-cashout", rule_version="3",
        kind="rapid_cashout", severity=severity, score=0.93, subject=f"L-{n}", accounts=("U1001", "U2002"),
        loan_ids=(f"L-{n}",), txn_ids=("d-8f1c", "t-93aa"), amount=485_100, currency="CNY",
        first_ts=1_772_446_500_000, event_ts=1_772_448_012_000, detected_at=1_772_448_012_350,
        summary="97% of loan L-77 reached cash-out sinks", evidence={"hops": 2}, notify=("pager",))


def test_generic_body_is_the_warning_json():
    warning = _warning()
    assert json.loads(payloads.generic_body(warning)) == warning.to_dict()


@pytest.mark.parametrize("severity, expected", [("critical", "critical"), ("high", "error"),
                                                ("medium", "warning"), ("low", "info"), ("info", "info")])
def test_pagerduty_body_follows_events_api_v2(severity, expected):
    warning = _warning(severity=severity)
    body = json.loads(payloads.pagerduty_body(warning, "R0UT1NGKEY"))
    assert body["routing_key"] == "R0UT1NGKEY"
    assert body["event_action"] == "trigger"
    assert body["dedup_key"] == warning.warning_id
    event = body["payload"]
    assert event == {
        "summary": warning.summary, "severity": expected, "source": "fundflow",
        "timestamp": "2026-03-02T10:40:12.350Z", "component": "L-1", "group": "rapid-cashout",
        "class": "rapid_cashout", "custom_details": warning.to_dict()}


def test_pagerduty_summary_is_capped_at_1024_characters():
    long = EarlyWarning(**{**{f: getattr(_warning(), f) for f in _warning().__dataclass_fields__},
                           "summary": "x" * 5000})
    assert len(json.loads(payloads.pagerduty_body(long, "k"))["payload"]["summary"]) == 1024


def test_storm_summary_lists_every_id_and_takes_the_highest_severity():
    warnings = tuple(_warning(n, "critical" if n == 3 else "high") for n in range(30))
    summary = payloads.StormSummary("rapid-cashout", NOW_MS // 60_000, warnings)
    generic = json.loads(payloads.generic_summary_body(summary))
    assert generic["type"] == "storm_summary" and generic["count"] == 30
    assert generic["warning_ids"] == [w.warning_id for w in warnings]
    assert len(generic["warnings"]) == payloads.SUMMARY_SAMPLE
    assert generic["severity"] == "critical" and generic["minute_start"] == "2026-03-02T10:41:00.000Z"
    pd = json.loads(payloads.pagerduty_summary_body(summary, "k", NOW_MS))
    assert pd["dedup_key"] == f"storm-rapid-cashout-{NOW_MS // 60_000}"
    assert pd["payload"]["severity"] == "critical" and pd["payload"]["class"] == "storm_summary"


def test_signature_covers_timestamp_and_body_and_rejects_tampering_and_replays():
    body = payloads.generic_body(_warning())
    headers = payloads.signed_headers("s3cret", NOW_MS, body)
    assert headers["X-Fundflow-Timestamp"] == str(NOW_MS // 1000)
    assert headers["X-Fundflow-Signature"].startswith("sha256=")
    assert headers["X-Fundflow-Signature"] == payloads.sign("s3cret", NOW_MS // 1000, body)
    now_s = NOW_MS // 1000
    assert payloads.verify("s3cret", headers, body, now_s)
    assert not payloads.verify("other", headers, body, now_s)
    assert not payloads.verify("s3cret", headers, body + b" ", now_s)
    assert not payloads.verify("s3cret", {**headers, "X-Fundflow-Timestamp": str(now_s + 1)}, body, now_s)
    assert not payloads.verify("s3cret", headers, body, now_s + 301)  # a replay ten minutes later
    assert "X-Fundflow-Signature" not in payloads.signed_headers(None, NOW_MS, body)


def test_signature_is_hmac_sha256_of_timestamp_dot_body():
    import hashlib
    import hmac
    expected = hmac.new(b"k", b"1700000000.{}", hashlib.sha256).hexdigest()
    assert payloads.sign("k", 1_700_000_000, b"{}") == f"sha256={expected}"


@pytest.mark.parametrize("value, expected", [
    ("120", 120.0), (" 3 ", 3.0), ("Mon, 02 Mar 2026 10:42:10 GMT", 30.0),
    ("Mon, 02 Mar 2026 10:00:00 GMT", 0.0), ("soon", None), ("", None), (None, None), ("999999", 3600.0)])
def test_retry_after_reads_seconds_and_http_dates(value, expected):
    assert retry_after_seconds(value, NOW_MS) == expected


def test_pager_config_from_settings_checks_what_each_format_needs():
    base = load_settings(None, env={}).with_overrides(webhook_url="http://127.0.0.1:1/hook", webhook_secret="s")
    config = PagerConfig.from_settings(base)
    assert (config.format, config.min_severity, config.storm_limit, config.timeout_s) == ("generic", "high", 10, 10.0)
    with pytest.raises(ValueError, match="pagerduty_routing_key"):
        PagerConfig.from_settings(base.with_overrides(webhook_format="pagerduty"))
    with pytest.raises(ValueError, match="webhook_url"):
        PagerConfig.from_settings(load_settings(None, env={}))
