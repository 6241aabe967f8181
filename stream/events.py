"""Disbursement and transfer events (DESIGN.md §4) and the one parser every input path uses.

Kafka messages, `.jsonl` files, rule tests and the simulator all go through `parse_event`, so a message is
accepted or refused for the same reason everywhere. Every refusal is an `EventError` whose `reason` is a
stable code (dead-letter metrics group by it) and whose message says what was expected and what arrived.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping, Union

import orjson

from .errors import EventError
from .money import MAX_UNITS, MINOR_PER_UNIT, format_minor, parse_amount_minor
from .timefmt import MS_PER_DAY, format_ts, parse_rfc3339_ms

# Anything before 2000 or after 2100 is a unit mistake (seconds for ms, ns for ms) or a default value.
MIN_TS_MS = 946_684_800_000       # 2000-01-01T00:00:00Z
MAX_TS_MS = 4_102_444_800_000     # 2100-01-01T00:00:00Z
MAX_FUTURE_MS = MS_PER_DAY        # how far past the watermark an event may claim to be
MAX_ID_LEN = 256

DEFAULT_CURRENCY = "CNY"
DEFAULT_CHANNEL = "p2p"

# Reason codes, stable: dashboards and dead-letter filters key on them.
MALFORMED_JSON = "malformed_json"
NOT_AN_OBJECT = "not_an_object"
MISSING_FIELD = "missing_field"
WRONG_TYPE = "wrong_type"
UNKNOWN_TYPE = "unknown_type"
BAD_AMOUNT = "bad_amount"
BAD_TIMESTAMP = "bad_timestamp"
ABSURD_TIMESTAMP = "absurd_timestamp"
SELF_TRANSFER = "self_transfer"

_EMPTY: Mapping[str, Any] = MappingProxyType({})

_DISBURSEMENT_FIELDS = frozenset(
    {"type", "event_id", "ts", "loan_id", "account", "amount", "currency", "product", "device_id", "ip"})
_TRANSFER_FIELDS = frozenset(
    {"type", "event_id", "ts", "src", "dst", "amount", "currency", "channel", "merchant_category",
     "device_id", "ip"})


@dataclass(frozen=True, slots=True)
class Disbursement:
    """Money lent to a borrower: the start of every traced lot."""

    event_id: str
    ts: int                     # event time, epoch ms UTC
    loan_id: str
    account: str
    amount: int                 # minor units (cents)
    currency: str = DEFAULT_CURRENCY
    product: str | None = None
    device_id: str | None = None
    ip: str | None = None
    extra: Mapping[str, Any] = field(default_factory=lambda: _EMPTY, compare=False)

    type = "disbursement"

    @property
    def accounts(self) -> tuple[str, ...]:
        return (self.account,)

    def to_dict(self) -> dict[str, Any]:
        return {**self.extra, "type": "disbursement", "event_id": self.event_id, "ts": format_ts(self.ts),
                "loan_id": self.loan_id, "account": self.account, "amount": format_minor(self.amount),
                "currency": self.currency, "product": self.product, "device_id": self.device_id, "ip": self.ip}


@dataclass(frozen=True, slots=True)
class Transfer:
    """Money moving out of `src`. `channel` says where it lands: another ledger account (p2p), an external
    card (withdrawal) or a merchant (merchant, with its MCC)."""

    event_id: str
    ts: int
    src: str
    dst: str
    amount: int
    currency: str = DEFAULT_CURRENCY
    channel: str = DEFAULT_CHANNEL
    merchant_category: str | None = None
    device_id: str | None = None
    ip: str | None = None
    extra: Mapping[str, Any] = field(default_factory=lambda: _EMPTY, compare=False)

    type = "transfer"

    @property
    def account(self) -> str:
        """The account the event is keyed by (its Kafka key): the payer."""
        return self.src

    @property
    def accounts(self) -> tuple[str, ...]:
        return (self.src, self.dst)

    def to_dict(self) -> dict[str, Any]:
        return {**self.extra, "type": "transfer", "event_id": self.event_id, "ts": format_ts(self.ts),
                "src": self.src, "dst": self.dst, "amount": format_minor(self.amount),
                "currency": self.currency, "channel": self.channel,
                "merchant_category": self.merchant_category, "device_id": self.device_id, "ip": self.ip}


Event = Union[Disbursement, Transfer]


def parse_event(raw: bytes | str | Mapping[str, Any], *, watermark: int | None = None) -> Event:
    """Bytes, text or a decoded object -> a validated event, or an `EventError` saying why not.

    `watermark` (epoch ms) bounds how far in the future an event may be: more than a day past it is absurd.
    """
    if isinstance(raw, (bytes, bytearray, memoryview, str)):
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise EventError(MALFORMED_JSON, f"not valid JSON ({exc})") from None
    else:
        obj = raw
    if not isinstance(obj, Mapping):
        raise EventError(NOT_AN_OBJECT, f"expected a JSON object, got {_json_type(obj)}")

    event_id = _required_str(obj, "event_id", None)
    kind = obj.get("type")
    if kind == "transfer":
        return _parse_transfer(obj, event_id, watermark)
    if kind == "disbursement":
        return _parse_disbursement(obj, event_id, watermark)
    if kind is None:
        raise EventError(MISSING_FIELD, "missing field 'type' (expected 'disbursement' or 'transfer')", event_id=event_id)
    raise EventError(UNKNOWN_TYPE, f"unknown type {kind!r}; expected 'disbursement' or 'transfer'", event_id=event_id)


def _parse_disbursement(obj: Mapping[str, Any], event_id: str, watermark: int | None) -> Disbursement:
    ts = _parse_ts(obj, event_id, watermark)
    account = _required_str(obj, "account", event_id)
    amount = _parse_amount(obj, event_id)
    return Disbursement(
        event_id=event_id, ts=ts,
        loan_id=_optional_str(obj, "loan_id", event_id) or event_id,
        account=account, amount=amount,
        currency=_parse_currency(obj, event_id),
        product=_optional_str(obj, "product", event_id),
        device_id=_optional_str(obj, "device_id", event_id),
        ip=_optional_str(obj, "ip", event_id),
        extra=_extra(obj, _DISBURSEMENT_FIELDS),
    )


def _parse_transfer(obj: Mapping[str, Any], event_id: str, watermark: int | None) -> Transfer:
    ts = _parse_ts(obj, event_id, watermark)
    src = _required_str(obj, "src", event_id)
    dst = _required_str(obj, "dst", event_id)
    if src == dst:
        raise EventError(SELF_TRANSFER, f"src and dst are the same account {src!r}", event_id=event_id)
    amount = _parse_amount(obj, event_id)
    mcc = obj.get("merchant_category")
    if isinstance(mcc, int) and not isinstance(mcc, bool):
        mcc = f"{mcc:04d}"
    elif mcc is not None and not isinstance(mcc, str):
        raise EventError(WRONG_TYPE, f"field 'merchant_category' must be a string (ISO 18245 MCC) or null, "
                                     f"got {_json_type(mcc)}", event_id=event_id)
    return Transfer(
        event_id=event_id, ts=ts, src=src, dst=dst, amount=amount,
        currency=_parse_currency(obj, event_id),
        channel=_optional_str(obj, "channel", event_id) or DEFAULT_CHANNEL,
        merchant_category=mcc or None,
        device_id=_optional_str(obj, "device_id", event_id),
        ip=_optional_str(obj, "ip", event_id),
        extra=_extra(obj, _TRANSFER_FIELDS),
    )


def _required_str(obj: Mapping[str, Any], name: str, event_id: str | None) -> str:
    if name not in obj or obj[name] is None:
        raise EventError(MISSING_FIELD, f"missing field {name!r}", event_id=event_id)
    value = obj[name]
    if not isinstance(value, str):
        raise EventError(WRONG_TYPE, f"field {name!r} must be a string, got {_json_type(value)} {value!r}"[:300],
                         event_id=event_id)
    value = value.strip()
    if not value:
        raise EventError(MISSING_FIELD, f"field {name!r} is empty", event_id=event_id)
    if len(value) > MAX_ID_LEN:
        raise EventError(WRONG_TYPE, f"field {name!r} is {len(value)} characters long; at most {MAX_ID_LEN} allowed",
                         event_id=event_id)
    return value


def _optional_str(obj: Mapping[str, Any], name: str, event_id: str) -> str | None:
    value = obj.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise EventError(WRONG_TYPE, f"field {name!r} must be a string or null, got {_json_type(value)}",
                         event_id=event_id)
    return value.strip() or None


def _parse_currency(obj: Mapping[str, Any], event_id: str) -> str:
    value = obj.get("currency")
    if value is None:
        return DEFAULT_CURRENCY
    if not isinstance(value, str) or len(value) != 3 or not value.isalpha():
        raise EventError(WRONG_TYPE, f"field 'currency' must be a 3-letter ISO 4217 code, got {value!r}",
                         event_id=event_id)
    return value.upper()


def _parse_amount(obj: Mapping[str, Any], event_id: str) -> int:
    if "amount" not in obj or obj["amount"] is None:
        raise EventError(MISSING_FIELD, "missing field 'amount'", event_id=event_id)
    value = obj["amount"]
    if type(value) is str and _PLAIN_AMOUNT.fullmatch(value):
        minor = int(value[:-3]) * MINOR_PER_UNIT + int(value[-2:])
        if 0 < minor <= MAX_UNITS * MINOR_PER_UNIT:
            return minor
    try:
        return parse_amount_minor(value)
    except ValueError as exc:
        raise EventError(BAD_AMOUNT, str(exc), event_id=event_id) from None


# '4900.00': the shape of nearly every amount, converted without Decimal; anything else takes `parse_amount_minor`.
_PLAIN_AMOUNT = re.compile(r"[0-9]{1,15}\.[0-9]{2}")


def _parse_ts(obj: Mapping[str, Any], event_id: str, watermark: int | None) -> int:
    if "ts" not in obj or obj["ts"] is None:
        raise EventError(MISSING_FIELD, "missing field 'ts'", event_id=event_id)
    value = obj["ts"]
    if isinstance(value, bool):
        raise EventError(BAD_TIMESTAMP, f"field 'ts' must be RFC 3339 text or integer epoch milliseconds, "
                                        f"got {value!r}", event_id=event_id)
    if isinstance(value, int):
        ts = value
    elif isinstance(value, float) and value.is_integer():
        ts = int(value)
    elif isinstance(value, str):
        try:
            ts = _parse_text_ts(value.strip())
        except ValueError as exc:
            raise EventError(BAD_TIMESTAMP, str(exc), event_id=event_id) from None
    else:
        raise EventError(BAD_TIMESTAMP, f"field 'ts' must be RFC 3339 text or integer epoch milliseconds, "
                                        f"got {_json_type(value)} {value!r}", event_id=event_id)
    if ts < MIN_TS_MS:
        raise EventError(ABSURD_TIMESTAMP, f"ts {value!r} is before 2000-01-01 (seconds sent as milliseconds?)",
                         event_id=event_id)
    if ts >= MAX_TS_MS:
        raise EventError(ABSURD_TIMESTAMP, f"ts {value!r} is after 2100-01-01 (micro- or nanoseconds sent as "
                                           f"milliseconds?)", event_id=event_id)
    if watermark is not None:
        check_not_ahead(ts, watermark, event_id)
    return ts


# Epoch ms of each minute 'YYYY-MM-DDTHH:MM' already seen in the shape producers send; bounded, cleared when full.
_MINUTE_MS: dict[str, int] = {}
_MINUTE_CACHE_SIZE = 100_000


def _parse_text_ts(text: str) -> int:
    """`parse_rfc3339_ms`, with a shortcut for the shape nearly every event has, 'YYYY-MM-DDTHH:MM:SS.mmmZ':
    the minute is looked up (the full parser validated it the first time it was seen), seconds and millis are
    added. Any other shape, an unseen minute or second 60 takes the full parser, so results are identical."""
    if len(text) == 24 and text[23] == "Z" and text[19] == "." and text[16] == ":" and "0" <= text[17] <= "5":
        tail = text[17:19] + text[20:23]
        if tail.isdigit() and tail.isascii():
            offset = int(text[17:19]) * 1000 + int(text[20:23])
            minute = _MINUTE_MS.get(text[:16])
            if minute is not None:
                return minute + offset
            ts = parse_rfc3339_ms(text)
            if len(_MINUTE_MS) >= _MINUTE_CACHE_SIZE:
                _MINUTE_MS.clear()
            _MINUTE_MS[text[:16]] = ts - offset
            return ts
    return parse_rfc3339_ms(text)


def check_not_ahead(ts: int, watermark: int, event_id: str | None = None) -> None:
    """Refuse an event time more than a day past the stream's watermark: a unit or clock error that would
    drag the watermark forward and make every later event look too old."""
    if ts > watermark + MAX_FUTURE_MS:
        raise EventError(ABSURD_TIMESTAMP, f"ts {format_ts(ts)} is more than a day ahead of the stream's "
                                           f"watermark {_format_any_ts(watermark)}", event_id=event_id)


def _format_any_ts(ms: int) -> str:
    """RFC 3339 when the instant is representable, raw epoch ms otherwise: an error message must not fail."""
    try:
        return format_ts(ms)
    except (ValueError, OverflowError, OSError):
        return f"{ms} (epoch ms)"


def _extra(obj: Mapping[str, Any], known: frozenset[str]) -> Mapping[str, Any]:
    if known.issuperset(obj):
        return _EMPTY
    return MappingProxyType({k: v for k, v in obj.items() if k not in known})


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    return {bool: "boolean", int: "number", float: "number", str: "string", list: "array",
            dict: "object"}.get(type(value), type(value).__name__)


def event_key(event: Event) -> str:
    """The Kafka key of an event: the account it is about (the payer for a transfer)."""
    return event.account
