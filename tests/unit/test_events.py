"""parse_event: every class of bad input gets its reason code; good input in every accepted shape; and no
input whatsoever makes it raise anything but EventError."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings, strategies as st

from stream.errors import EventError
from stream.model.events import (ABSURD_TIMESTAMP, BAD_AMOUNT, BAD_TIMESTAMP, FIELD_MAX_LEN, FIELD_TOO_LONG,
                           MALFORMED_JSON, MAX_DEPTH, MAX_MESSAGE_BYTES, MESSAGE_TOO_LARGE, MISSING_FIELD,
                           NOT_AN_OBJECT, SELF_TRANSFER, TOO_DEEP, UNKNOWN_TYPE, WRONG_TYPE, Disbursement, Transfer,
                           event_key, parse_event)

TS = "2026-03-02T10:15:00.000Z"
TS_MS = 1_772_446_500_000

DISBURSEMENT = {"type": "disbursement", "event_id": "d-8f1c", "ts": TS, "loan_id": "L-77", "account": "U1001",
                "amount": "5000.00", "currency": "CNY", "product": "credit_line", "device_id": "dev-1a2b",
                "ip": "10.0.0.7"}
TRANSFER = {"type": "transfer", "event_id": "t-93aa", "ts": "2026-03-02T10:21:40.000Z", "src": "U1001",
            "dst": "U2002", "amount": "4900.00", "currency": "CNY", "channel": "p2p", "merchant_category": None,
            "device_id": "dev-1a2b", "ip": "10.0.0.7"}


def refusal(raw, **kwargs) -> EventError:
    with pytest.raises(EventError) as info:
        parse_event(raw, **kwargs)
    return info.value


def with_(base: dict, **changes) -> bytes:
    return json.dumps({**base, **changes}).encode()


def without(base: dict, name: str) -> bytes:
    return json.dumps({k: v for k, v in base.items() if k != name}).encode()


# ---------------------------------------------------------------- good input

def test_design_examples_parse_to_exact_values():
    d = parse_event(json.dumps(DISBURSEMENT).encode())
    assert d == Disbursement(event_id="d-8f1c", ts=TS_MS, loan_id="L-77", account="U1001", amount=500_000,
                             currency="CNY", product="credit_line", device_id="dev-1a2b", ip="10.0.0.7")
    t = parse_event(json.dumps(TRANSFER))
    assert t == Transfer(event_id="t-93aa", ts=TS_MS + 400_000, src="U1001", dst="U2002", amount=490_000,
                         channel="p2p", device_id="dev-1a2b", ip="10.0.0.7")
    assert event_key(d) == "U1001" and event_key(t) == "U1001"
    assert t.accounts == ("U1001", "U2002")


@pytest.mark.parametrize("ts", [
    "2026-03-02T10:15:00.000Z", "2026-03-02T10:15:00Z", "2026-03-02t10:15:00z", "2026-03-02T18:15:00+08:00",
    "2026-03-02T05:15:00.000-05:00", "2026-03-02T10:15:00.000000000Z", TS_MS, float(TS_MS),
])
def test_timestamps_in_every_accepted_form(ts):
    assert parse_event(with_(TRANSFER, ts=ts)).ts == TS_MS


def test_fraction_of_seconds_is_kept_to_the_millisecond():
    assert parse_event(with_(TRANSFER, ts="2026-03-02T10:15:00.1234Z")).ts == TS_MS + 123


@pytest.mark.parametrize("amount,minor", [
    ("4900.00", 490_000), ("4900", 490_000), ("0.01", 1), (" 12.5 ", 1250), (4900, 490_000), (12.5, 1250),
    (0.1, 10), ("1e2", 10_000),
])
def test_amounts_as_strings_and_numbers(amount, minor):
    assert parse_event(with_(TRANSFER, amount=amount)).amount == minor


def test_extra_fields_are_kept_and_round_trip():
    event = parse_event(with_(TRANSFER, batch="b-7", risk={"tier": 2}))
    assert dict(event.extra) == {"batch": "b-7", "risk": {"tier": 2}}
    assert event.to_dict()["batch"] == "b-7"
    assert parse_event(event.to_dict()) == event


def test_optional_fields_take_defaults():
    event = parse_event({"type": "transfer", "event_id": "t-1", "ts": TS, "src": "A", "dst": "B", "amount": 1})
    assert (event.currency, event.channel, event.merchant_category, event.device_id) == ("CNY", "p2p", None, None)
    d = parse_event({"type": "disbursement", "event_id": "d-1", "ts": TS, "account": "A", "amount": 1})
    assert d.loan_id == "d-1"   # no loan id: the disbursement is its own loan


def test_numeric_merchant_category_becomes_four_digit_code():
    assert parse_event(with_(TRANSFER, channel="merchant", merchant_category=742)).merchant_category == "0742"


def test_watermark_allows_up_to_a_day_ahead():
    a_day = 86_400_000
    assert parse_event(with_(TRANSFER, ts=TS_MS + a_day), watermark=TS_MS).ts == TS_MS + a_day


# ---------------------------------------------------------------- bad input, by reason

@pytest.mark.parametrize("raw", [b"", b"{", b'{"type": "transfer",', b"\xff\xfe\x00", "not json", b"NaN x"])
def test_malformed_json(raw):
    assert refusal(raw).reason == MALFORMED_JSON


@pytest.mark.parametrize("raw", [b"[]", b"[1]", b"42", b'"text"', b"null", b"true", [1, 2], "3.5"])
def test_not_an_object(raw):
    error = refusal(raw)
    assert error.reason == NOT_AN_OBJECT
    assert "expected a JSON object" in str(error)


@pytest.mark.parametrize("base,name", [
    (DISBURSEMENT, "type"), (DISBURSEMENT, "event_id"), (DISBURSEMENT, "ts"), (DISBURSEMENT, "account"),
    (DISBURSEMENT, "amount"), (TRANSFER, "src"), (TRANSFER, "dst"), (TRANSFER, "amount"), (TRANSFER, "ts"),
])
def test_missing_field(base, name):
    error = refusal(without(base, name))
    assert error.reason == MISSING_FIELD
    assert repr(name) in str(error)


@pytest.mark.parametrize("name", ["event_id", "src", "dst"])
def test_null_or_blank_required_field_is_missing(name):
    assert refusal(with_(TRANSFER, **{name: None})).reason == MISSING_FIELD
    assert refusal(with_(TRANSFER, **{name: "   "})).reason == MISSING_FIELD


@pytest.mark.parametrize("changes", [
    {"event_id": 17}, {"src": ["U1"]}, {"dst": {"id": "U2"}}, {"channel": 3}, {"currency": "yuan"},
    {"currency": 156}, {"merchant_category": ["5411"]}, {"device_id": 12},
    {"currency": "ÄÖÜ"}, {"currency": "人民币"}, {"currency": "ＵＳＤ"}, {"currency": "US"},
    {"merchant_category": -5}, {"merchant_category": 10000}, {"merchant_category": "54a1"},
    {"merchant_category": "٥٤١١"}, {"merchant_category": True},
])
def test_wrong_type(changes):
    error = refusal(with_(TRANSFER, **changes))
    assert error.reason == WRONG_TYPE
    assert error.event_id in (None, "t-93aa")


# ---------------------------------------------------------------- limits: size, depth, field lengths

@pytest.mark.parametrize("name", sorted(FIELD_MAX_LEN))
def test_every_text_field_has_a_length_limit(name):
    base = DISBURSEMENT if name in ("loan_id", "account", "product") else TRANSFER
    limit = FIELD_MAX_LEN[name]
    assert parse_event(with_(base, **{name: "x" * limit}))     # at the limit: accepted
    error = refusal(with_(base, **{name: "x" * (limit + 1)}))
    assert error.reason == FIELD_TOO_LONG and f"at most {limit}" in str(error)
    assert len(str(error)) < 400                               # a bounded quote, not the value


@pytest.mark.parametrize("name", ["ts", "amount"])
def test_text_timestamps_and_amounts_have_a_length_limit(name):
    assert refusal(with_(TRANSFER, **{name: "1" * 1000})).reason == FIELD_TOO_LONG


def test_a_400k_loan_id_is_refused_not_carried_into_a_warning():
    error = refusal(with_(DISBURSEMENT, loan_id="L" * 400_000))
    assert error.reason == MESSAGE_TOO_LARGE and len(str(error)) < 200
    error = refusal({**DISBURSEMENT, "loan_id": "L" * 400_000})      # a decoded object has no byte size
    assert error.reason == FIELD_TOO_LONG and len(str(error)) < 400


def test_messages_over_the_size_limit_are_refused_before_decoding():
    raw = with_(TRANSFER, note="n" * MAX_MESSAGE_BYTES)
    error = refusal(raw)
    assert error.reason == MESSAGE_TOO_LARGE and str(len(raw)) in str(error)
    assert refusal(raw.decode()).reason == MESSAGE_TOO_LARGE


@pytest.mark.parametrize("name", ["event_id", "ts", "account", "src", "dst", "amount", "type", "currency",
                                  "loan_id", "device_id", "ip", "channel", "product", "extra_field"])
@pytest.mark.parametrize("depth", [MAX_DEPTH, 1000, 1100])
def test_deep_nesting_in_any_field_is_refused_without_recursion(name, depth):
    nested = "[" * depth + "]" * depth
    base = DISBURSEMENT if name in ("loan_id", "account", "product") else TRANSFER
    raw = json.dumps(base)[:-1] + f', "{name}": {nested}}}'
    error = refusal(raw.encode())
    assert error.reason == TOO_DEEP, (name, depth, str(error))
    assert len(str(error)) < 300


def test_nesting_within_the_limit_is_kept_in_extra():
    nested = {"a": {"b": {"c": [1, [2, [3]]]}}}     # the event is level 1, [3] is level 7
    assert dict(parse_event(with_(TRANSFER, risk=nested)).extra) == {"risk": nested}


def test_deep_nesting_in_a_decoded_object_is_refused_too():
    value: list = []
    for _ in range(5000):
        value = [value]
    assert refusal({**TRANSFER, "risk": value}).reason == TOO_DEEP


# ---------------------------------------------------------------- the contract, exactly

@pytest.mark.parametrize("ts", ["٢٠٢٦-03-02T10:15:00Z", "2026-03-02T10:15:0٠Z", "2026-03-02T10:15:00.٠٠٠Z",
                                "2026-03-02T10:15:00+0٨:00"])
def test_timestamps_take_ascii_digits_only(ts):
    assert refusal(with_(TRANSFER, ts=ts)).reason == BAD_TIMESTAMP


@pytest.mark.parametrize("second", ["60", "61", "99"])
def test_seconds_out_of_range_are_refused_not_clamped(second):
    for ts in (f"2026-03-02T10:15:{second}Z", f"2026-03-02T10:15:{second}.000Z"):
        error = refusal(with_(TRANSFER, ts=ts))
        assert error.reason == BAD_TIMESTAMP and "out of range" in str(error)


@pytest.mark.parametrize("number", ["5.0000000000000001", "4900.001", "0.005", "1.0e-3", "12.345"])
def test_json_number_amounts_are_read_exactly(number):
    raw = json.dumps(TRANSFER)[:-1] + f', "amount": {number}}}'
    raw = raw.replace('"amount": "4900.00", ', "")
    assert refusal(raw.encode()).reason == BAD_AMOUNT
    assert refusal(with_(TRANSFER, amount=number)).reason == BAD_AMOUNT       # the same text form


@pytest.mark.parametrize("number,minor", [("5.25", 525), ("4900.10", 490_010), ("1e2", 10_000), ("7", 700)])
def test_exact_json_numbers_within_two_decimals_are_accepted(number, minor):
    raw = json.dumps({k: v for k, v in TRANSFER.items() if k != "amount"})[:-1] + f', "amount": {number}}}'
    assert parse_event(raw.encode()).amount == minor


@pytest.mark.parametrize("mcc,code", [(5411, "5411"), (742, "0742"), (0, "0000"), ("0742", "0742")])
def test_merchant_category_is_four_ascii_digits(mcc, code):
    assert parse_event(with_(TRANSFER, channel="merchant", merchant_category=mcc)).merchant_category == code


def test_error_messages_quote_a_bounded_prefix_never_a_repr():
    for changes in ({"src": ["U"] * 10_000}, {"event_id": {"k": "v" * 10_000}}, {"type": "t" * 10_000},
                    {"currency": "c" * 10_000}, {"ts": {"a": 1}}, {"amount": "9" * 60}):
        text = str(refusal(with_(TRANSFER, **changes)))
        assert len(text) < 400, (changes.keys(), text)


@pytest.mark.parametrize("kind", ["refund", "Transfer", "", 1, True])
def test_unknown_type(kind):
    error = refusal(with_(TRANSFER, type=kind))
    assert error.reason == UNKNOWN_TYPE
    assert "expected 'disbursement' or 'transfer'" in str(error)


@pytest.mark.parametrize("amount", [
    "0", "0.00", 0, -5, "-0.01", "NaN", "nan", "Infinity", "-Infinity", "inf", "abc", "", "1,000.00",
    "12.345", 1.005, "0.001", True, False, [1], {"value": 1}, "1e20",
])
def test_bad_amount(amount):
    error = refusal(with_(TRANSFER, amount=amount))
    assert error.reason == BAD_AMOUNT, amount
    assert error.event_id == "t-93aa"


def test_non_finite_json_numbers_are_refused():
    # Python's json emits NaN / Infinity literals; they are not JSON, and must not become money.
    for number in (math.nan, math.inf):
        assert refusal(json.dumps({**TRANSFER, "amount": number}).encode()).reason in (MALFORMED_JSON, BAD_AMOUNT)
        assert refusal({**TRANSFER, "amount": number}).reason == BAD_AMOUNT


@pytest.mark.parametrize("ts", [
    "yesterday", "2026-03-02", "2026-03-02 10:15", "2026-03-02T10:15:00", "2026-13-02T10:15:00Z",
    "2026-02-30T10:15:00Z", "2026-03-02T25:15:00Z", "2026-03-02T10:15:00+8", True, [TS], {"ms": TS_MS},
    1.5e12 + 0.5, "",
])
def test_bad_timestamp(ts):
    error = refusal(with_(TRANSFER, ts=ts))
    assert error.reason == BAD_TIMESTAMP, ts


@pytest.mark.parametrize("ts", [
    0, 1_772_446_500, -1, "1999-12-31T23:59:59.999Z", "2100-01-01T00:00:00Z", 1_772_446_500_000_000,
    "2150-06-01T00:00:00+00:00",
])
def test_absurd_timestamp(ts):
    assert refusal(with_(TRANSFER, ts=ts)).reason == ABSURD_TIMESTAMP


def test_more_than_a_day_past_the_watermark_is_absurd():
    error = refusal(with_(TRANSFER, ts=TS_MS + 86_400_001), watermark=TS_MS)
    assert error.reason == ABSURD_TIMESTAMP
    assert "watermark" in str(error)


def test_self_transfer():
    error = refusal(with_(TRANSFER, dst="U1001"))
    assert error.reason == SELF_TRANSFER
    assert '"U1001"' in str(error)


def test_error_message_names_reason_expectation_and_event():
    text = str(refusal(with_(TRANSFER, amount="12.345")))
    assert text.startswith("bad_amount: ") and "more than 2 decimals" in text and "'t-93aa'" in text


# ---------------------------------------------------------------- nothing but EventError, whatever arrives

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=30)
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=8)
field_names = st.sampled_from(sorted({*DISBURSEMENT, *TRANSFER})) | st.text(max_size=10)


def parses_or_refuses(raw, watermark=None) -> None:
    try:
        event = parse_event(raw, watermark=watermark)
    except EventError as exc:
        assert exc.reason and str(exc)
        return
    assert isinstance(event, (Disbursement, Transfer))
    assert event.amount > 0 and isinstance(event.amount, int) and isinstance(event.ts, int)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_never_raise_anything_but_event_error(raw):
    parses_or_refuses(raw)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(field_names, json_values, max_size=12))
def test_random_objects_never_raise_anything_but_event_error(obj):
    parses_or_refuses(obj)
    try:
        text = json.dumps(obj)
    except (ValueError, TypeError):
        return
    parses_or_refuses(text.encode(), watermark=TS_MS)


@settings(max_examples=400, deadline=None)
@given(st.sampled_from([DISBURSEMENT, TRANSFER]), st.lists(st.tuples(field_names, json_values), max_size=4),
       st.one_of(st.none(), st.integers(min_value=-2**63, max_value=2**63)))
def test_valid_events_with_random_field_values_never_raise_anything_but_event_error(base, changes, watermark):
    parses_or_refuses({**base, **dict(changes)}, watermark=watermark)
