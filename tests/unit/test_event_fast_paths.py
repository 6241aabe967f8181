"""The parser's shortcuts for common timestamps and amounts give exactly what the full parsers give, or defer to
them (same value, same error) on anything else."""

from __future__ import annotations

import json

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


# -- the typed decode (`_parse_typed`) against the full parser (`_parse_checked`) --------------------------------
from stream.model.events import MAX_ID_LEN, _parse_checked, _parse_typed, parse_event  # noqa: E402

_TRANSFER = {"type": "transfer", "event_id": "t-1", "ts": "2026-03-02T10:15:07.042Z", "src": "U1", "dst": "U2",
             "amount": "4900.00", "currency": "CNY", "channel": "p2p", "merchant_category": None,
             "device_id": "dev-1", "ip": "10.0.0.1"}
_DISBURSEMENT = {"type": "disbursement", "event_id": "d-1", "ts": 1772446507042, "loan_id": "L-1",
                 "account": "U1", "amount": "5000.00", "currency": "cny", "product": "cash_loan",
                 "device_id": "dev-1", "ip": "10.0.0.1"}
# Values near every boundary the contract draws: padding, empty, lengths at and past a limit, wrong JSON types,
# numbers where text is usual, other shapes of amounts, timestamps and codes.
_TRICKY = st.sampled_from([
    None, "", " ", " U1", "U1 ", "U2", "x" * MAX_ID_LEN, "x" * (MAX_ID_LEN + 1), " " + "x" * MAX_ID_LEN, 0, 1, -1,
    True, 1.5, 1772446507042.0, 1772446507042, 2**70, [], {}, {"a": [1]}, "transfer", "disbursement", "Transfer",
    "2026-03-02T10:15:07.042Z", " 2026-03-02T10:15:07.042Z", "2026-03-02T10:15:60.000Z", "2026-03-02T10:15:07Z",
    "2026-03-02T10:15:07.042+08:00", "1999-12-31T23:59:59.999Z", "2100-01-01T00:00:00.000Z", "t" * 65,
    "0.00", "0.01", "4900.00", "4900.0", "4900", "1e3", "99999999999999.99", "9999999999999.99", "-1.00", 4900,
    4900.5, "USD", "usd", "US", "USDX", "U$D", "5411", "0742", 742, "54111", "५४११", "p2p", "withdrawal",
    "merchant", " merchant ", "x" * 33, "ip" * 40,
])
_FIELDS = st.sampled_from(sorted({*_TRANSFER, *_DISBURSEMENT, "note"}))


def _result(parse, raw, watermark):
    try:
        event = parse(raw, watermark)
    except EventError as exc:
        return ("refused", exc.reason, str(exc))
    return ("event", type(event).__name__, event._identity(), dict(event.extra))


@settings(max_examples=1500, deadline=None)
@given(st.sampled_from([_TRANSFER, _DISBURSEMENT]), st.lists(st.tuples(_FIELDS, _TRICKY), max_size=3),
       st.lists(_FIELDS, max_size=2), st.sampled_from([None, 1772446507042, 1772300000000, 1772600000000]))
def test_the_typed_decode_gives_what_the_full_parser_gives(base, changes, dropped, watermark):
    obj = {key: value for key, value in {**base, **dict(changes)}.items() if key not in dropped}
    raw = json.dumps(obj).encode()
    typed = _parse_typed_or_none(raw, watermark)
    full = _result(_parse_checked, raw, watermark)
    if typed is not None:          # what the typed decode accepts, it accepts exactly as the full parser does
        assert ("event", type(typed).__name__, typed._identity(), dict(typed.extra)) == full
    assert _result(lambda r, w: parse_event(r, watermark=w), raw, watermark) == full
    assert _result(lambda r, w: parse_event(r.decode(), watermark=w), raw, watermark) == full


def _parse_typed_or_none(raw, watermark):
    try:
        return _parse_typed(raw, watermark)
    except Exception:  # noqa: BLE001 - the typed decoder refusing is a fallback, not a result
        return None


def test_the_typed_decode_takes_the_common_shapes():
    """Not a fallback in disguise: the events every ledger sends go through the typed decode."""
    for base in (_TRANSFER, _DISBURSEMENT, {**_TRANSFER, "channel": "merchant", "merchant_category": "5411"},
                 {k: v for k, v in _TRANSFER.items() if k not in ("currency", "channel", "device_id", "ip")}):
        event = _parse_typed(json.dumps(base).encode(), None)
        assert event is not None and event == _parse_checked(json.dumps(base).encode(), None)


@pytest.mark.parametrize("raw", [
    b'{"type":"disbursement","type":"transfer","event_id":"t","ts":1772446507042,"src":"A","dst":"B","amount":"1.00"}',
    b'{"type":"transfer","event_id":"a","event_id":" ","ts":1772446507042,"src":"A","dst":"B","amount":"1.00"}',
    b'{"type":"transfer","event_id":"\\ud800","ts":1772446507042,"src":"A","dst":"B","amount":"1.00"}',
    b'{"type":"transfer","event_id":"\xff","ts":1772446507042,"src":"A","dst":"B","amount":"1.00"}',
    b'\xef\xbb\xbf{"type":"transfer","event_id":"t","ts":1772446507042,"src":"A","dst":"B","amount":"1.00"}',
    b'{"type":"transfer","event_id":"t","ts":1772446507042,"src":"A","dst":"B","amount":"1.00"} x',
    b'{"type":"transfer","ev\\u0065nt_id":"t","ts":1772446507042,"src":"A","dst":"B","amount":"1.00"}',
])
def test_duplicate_keys_escapes_and_bad_bytes_are_judged_like_the_full_parser(raw):
    assert _result(lambda r, w: parse_event(r, watermark=w), raw, None) == _result(_parse_checked, raw, None)
    text = raw.decode("utf-8", "surrogateescape")
    assert _result(lambda r, w: parse_event(r, watermark=w), text, None) == _result(_parse_checked, text, None)
