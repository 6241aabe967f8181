"""Event-time parsing/formatting, analyst durations, and money in integer minor units."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, strategies as st

from stream.model.money import MAX_MINOR, format_minor, minor_to_decimal, parse_amount_minor
from stream.model.timefmt import format_duration_ms, format_ts, parse_duration_ms, parse_rfc3339_ms

TS_MS = 1_772_446_500_000  # 2026-03-02T10:15:00.000Z


# ---------------------------------------------------------------- timestamps

@pytest.mark.parametrize("text,ms", [
    ("2026-03-02T10:15:00.000Z", TS_MS), ("2026-03-02T10:15:00Z", TS_MS), ("2026-03-02 10:15:00Z", TS_MS),
    ("2026-03-02T18:45:00+08:30", TS_MS), ("2026-03-02T00:15:00-10:00", TS_MS),
    ("2026-03-02T10:15:00.5Z", TS_MS + 500), ("2026-03-02T10:15:00.123456789Z", TS_MS + 123),
    ("1970-01-01T00:00:00Z", 0),
])
def test_parse_rfc3339(text, ms):
    assert parse_rfc3339_ms(text) == ms


@pytest.mark.parametrize("text", ["2026-03-02", "2026-03-02T10:15:00", "2026-03-02T10:15Z", "02/03/2026 10:15",
                                  "2026-02-29T00:00:00Z", "2026-03-02T10:15:00+24:00", "", "2026-03-02T10:15:00 Z",
                                  "2026-03-02T10:15:60Z", "2026-03-02T10:15:99Z"])   # leap seconds are refused
def test_parse_rfc3339_refuses_with_the_expected_shape(text):
    with pytest.raises(ValueError, match="RFC 3339|not a real date"):
        parse_rfc3339_ms(text)


def test_format_ts_is_utc_with_milliseconds():
    assert format_ts(TS_MS + 7) == "2026-03-02T10:15:00.007Z"
    assert format_ts(0) == "1970-01-01T00:00:00.000Z"


@given(st.integers(min_value=946_684_800_000, max_value=4_102_444_799_999))
def test_format_then_parse_round_trips(ms):
    assert parse_rfc3339_ms(format_ts(ms)) == ms


# ---------------------------------------------------------------- durations

@pytest.mark.parametrize("text,ms", [
    ("250ms", 250), ("90s", 90_000), ("30m", 1_800_000), ("2h", 7_200_000), ("1d", 86_400_000),
    ("1w", 604_800_000), (" 1.5h ", 5_400_000), (30, 30_000), (0.5, 500), ("0s", 0),
])
def test_parse_duration(text, ms):
    assert parse_duration_ms(text) == ms


@pytest.mark.parametrize("value", ["30", "30 minutes", "-5m", "1y", "", "m", True, -1, float("nan"), float("inf"),
                                   [1]])
def test_parse_duration_refuses(value):
    with pytest.raises(ValueError, match="duration"):
        parse_duration_ms(value)


@pytest.mark.parametrize("ms,text", [(5_400_000, "90m"), (86_400_000, "1d"), (604_800_000, "1w"),
                                     (1_500, "1500ms"), (0, "0ms"), (3_600_000, "1h")])
def test_format_duration_is_shortest_exact(ms, text):
    assert format_duration_ms(ms) == text
    assert parse_duration_ms(text) == ms


# ---------------------------------------------------------------- money

@pytest.mark.parametrize("value,minor", [
    ("4900.00", 490_000), ("4900", 490_000), ("0.01", 1), ("5000.000", 500_000), (" 7.5 ", 750), ("1e2", 10_000),
    (4900, 490_000), (0.1, 10), (0.29, 29), (12.5, 1250), (Decimal("3.10"), 310), ("10000000000000", MAX_MINOR),
])
def test_parse_amount(value, minor):
    assert parse_amount_minor(value) == minor


@pytest.mark.parametrize("value,fragment", [
    ("0", "greater than 0"), (-1, "greater than 0"), ("-0.01", "greater than 0"), ("12.345", "more than 2 decimals"),
    (1.005, "more than 2 decimals"), ("0.0100000000000000000000000000001", "more than 2 decimals"),
    ("1e-999999999", "more than 2 decimals"), ("NaN", "finite"), ("-Infinity", "finite"), ("abc", "not a number"),
    ("", "not a number"), (True, "decimal string or a number"), (None, "decimal string or a number"),
    ([1], "decimal string or a number"), ("10000000000000.01", "cannot be real"), ("1e999999999", "cannot be real"),
    (10**400, "cannot be real"),
])
def test_parse_amount_refuses_with_reason(value, fragment):
    with pytest.raises(ValueError, match=fragment) as info:
        parse_amount_minor(value)
    assert len(str(info.value)) < 200   # even a 400-digit amount gives a readable message


@pytest.mark.parametrize("minor,text", [(485_100, "4851.00"), (1, "0.01"), (10, "0.10"), (0, "0.00"), (-250, "-2.50")])
def test_format_minor(minor, text):
    assert format_minor(minor) == text


@given(st.integers(min_value=1, max_value=MAX_MINOR))
def test_minor_units_round_trip_through_text_and_decimal(minor):
    assert parse_amount_minor(format_minor(minor)) == minor
    assert parse_amount_minor(minor_to_decimal(minor)) == minor


@given(st.text(max_size=40) | st.floats() | st.integers())
def test_parse_amount_raises_only_value_error(value):
    try:
        minor = parse_amount_minor(value)
    except ValueError:
        return
    assert 0 < minor <= MAX_MINOR
