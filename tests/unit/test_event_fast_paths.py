"""The parser's shortcuts for common timestamps and amounts give exactly what the full parsers give, or defer to
them (same value, same error) on anything else."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream.errors import EventError
from stream.model.events import BAD_AMOUNT, _parse_amount, _parse_text_ts
from stream.model.money import parse_amount_minor
from stream.model.timefmt import parse_rfc3339_ms


def _outcome(parse, value):
    try:
        return ("ok", parse(value))
    except (ValueError, EventError) as exc:
        return ("error", str(exc))


_digit_or_junk = st.sampled_from("0123456789x٣ ")


@st.composite
def near_rfc3339(draw) -> str:
    """Mostly well-formed 'YYYY-MM-DDTHH:MM:SS.mmmZ', with any position possibly replaced by junk."""
    text = list(draw(st.sampled_from(["2026-03-02T10:15:00.000Z", "2026-02-28T23:59:59.999Z",
                                      "2024-02-29T00:00:60.500Z", "2026-02-29T12:00:00.000Z"])))
    for index in draw(st.lists(st.integers(0, 23), max_size=3)):
        text[index] = draw(_digit_or_junk)
    return "".join(text)


@settings(max_examples=400, deadline=None)
@given(near_rfc3339())
def test_timestamp_shortcut_matches_the_full_parser(text):
    first = _outcome(_parse_text_ts, text)
    again = _outcome(_parse_text_ts, text)         # the second call may take the cached minute
    assert first == again == _outcome(parse_rfc3339_ms, text)


@pytest.mark.parametrize("text", ["2026-03-02T10:15:07.042Z", "2026-03-02T10:15:59.999Z"])
def test_cached_minute_adds_seconds_and_millis(text):
    _parse_text_ts("2026-03-02T10:15:00.000Z")
    assert _parse_text_ts(text) == parse_rfc3339_ms(text)


@settings(max_examples=400, deadline=None)
@given(st.one_of(
    st.from_regex(r"\A[0-9]{1,17}\.[0-9]{1,3}\Z"),
    st.sampled_from(["0.00", "00.01", "0000000000000.00", "10000000000000.00", "9999999999999.99", " 1.00",
                     "1.00 ", "１.00", "1.0", "-1.00", "+1.00", "1e3", "1.001"]),
))
def test_amount_shortcut_matches_the_full_parser(text):
    def full(value):
        try:
            return parse_amount_minor(value)
        except ValueError as exc:
            raise EventError(BAD_AMOUNT, str(exc), event_id="e1") from None

    assert _outcome(lambda v: _parse_amount({"amount": v}, "e1"), text) == _outcome(full, text)
