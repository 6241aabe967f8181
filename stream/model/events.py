"""Disbursement and transfer events (docs/architecture.md §4) and the one parser every input path uses.

Kafka messages, `.jsonl` files, rule tests and the simulator all go through `parse_event`, so a message is
accepted or refused for the same reason everywhere. Every refusal is an `EventError` whose `reason` is a
stable code (dead-letter metrics group by it) and whose message says what was expected and what arrived.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from types import MappingProxyType
from typing import Annotated, Any, ClassVar, Mapping, Union

import msgspec
import orjson

from ..errors import EventError
from .money import MAX_UNITS, MINOR_PER_UNIT, format_minor, parse_amount_minor
from .nesting import nested_deeper_than
from .timefmt import MS_PER_DAY, format_ts, parse_rfc3339_ms

# Anything before 2000 or after 2100 is a unit mistake (seconds for ms, ns for ms) or a default value.
MIN_TS_MS = 946_684_800_000       # 2000-01-01T00:00:00Z
MAX_TS_MS = 4_102_444_800_000     # 2100-01-01T00:00:00Z
MAX_FUTURE_MS = MS_PER_DAY        # how far past the watermark an event may claim to be

# Limits of the event contract (docs/architecture.md, "Event format"). A real event is about 300 bytes; every
# limit is far above what a ledger sends and far below what could hurt a worker or a warning.
MAX_MESSAGE_BYTES = 65_536        # the whole message, before it is decoded
MAX_DEPTH = 8                     # nesting of objects and arrays, the event object itself being level 1
MAX_ID_LEN = 256                  # event_id, loan_id, account, src, dst, device_id
FIELD_MAX_LEN = {"event_id": MAX_ID_LEN, "loan_id": MAX_ID_LEN, "account": MAX_ID_LEN, "src": MAX_ID_LEN,
                 "dst": MAX_ID_LEN, "device_id": MAX_ID_LEN, "ip": 64, "channel": 32, "product": 64}
MAX_TEXT_FIELD_LEN = 64           # ts and amount when sent as text

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
MESSAGE_TOO_LARGE = "message_too_large"
TOO_DEEP = "too_deep"
FIELD_TOO_LONG = "field_too_long"
TOO_OLD = "too_old"               # refused by the detector: older than the window (see stream.worker.handler)
QUOTE_CHARS = 40                  # characters of an attacker-supplied value quoted in an error message

_EMPTY: Mapping[str, Any] = MappingProxyType({})

_DISBURSEMENT_FIELDS = frozenset(
    {"type", "event_id", "ts", "loan_id", "account", "amount", "currency", "product", "device_id", "ip"})
_TRANSFER_FIELDS = frozenset(
    {"type", "event_id", "ts", "src", "dst", "amount", "currency", "channel", "merchant_category",
     "device_id", "ip"})


class _EventStruct(msgspec.Struct, frozen=True, eq=False, gc=False):
    """Events are immutable C structs: made in a fraction of the time a frozen dataclass takes (which sets each
    field through object.__setattr__), and never tracked by the garbage collector (an event holds strings,
    numbers and its read-only extra fields, so it cannot be part of a reference cycle). Equality and hashing
    leave `extra` out: two events are the same event whatever unknown fields rode along."""

    def _identity(self) -> tuple:
        return tuple(getattr(self, name) for name in self.__struct_fields__ if name != "extra")

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and self._identity() == other._identity()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash(self._identity())


class Disbursement(_EventStruct, frozen=True, eq=False, gc=False):
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
    extra: Mapping[str, Any] = _EMPTY

    type: ClassVar[str] = "disbursement"

    @property
    def accounts(self) -> tuple[str, ...]:
        return (self.account,)

    def to_dict(self) -> dict[str, Any]:
        return {**self.extra, "type": "disbursement", "event_id": self.event_id, "ts": format_ts(self.ts),
                "loan_id": self.loan_id, "account": self.account, "amount": format_minor(self.amount),
                "currency": self.currency, "product": self.product, "device_id": self.device_id, "ip": self.ip}


class Transfer(_EventStruct, frozen=True, eq=False, gc=False):
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
    extra: Mapping[str, Any] = _EMPTY

    type: ClassVar[str] = "transfer"

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
    Every field is attacker-controlled: sizes and nesting are checked before anything else looks at the value,
    no check recurses, and error messages quote a bounded prefix of a value, never its `repr()`.

    Bytes and text first try `_parse_typed` (a typed msgspec decode, validated in C); whatever it does not
    accept as it stands takes the field-by-field parser below, which alone decides refusals and their messages.
    """
    if type(raw) is bytes or type(raw) is str:
        if len(raw) <= MAX_MESSAGE_BYTES:
            try:
                event = _parse_typed(raw, watermark)
            except Exception:  # noqa: BLE001 - anything the typed decoder refuses is judged by the full parser
                event = None
            if event is not None:
                return event
    return _parse_checked(raw, watermark)


def _parse_checked(raw: bytes | str | Mapping[str, Any], watermark: int | None) -> Event:
    """The full parser: every check in contract order, the reason and message of the first that fails."""
    raw_text: bytes | str | None = None
    if isinstance(raw, (bytes, bytearray, memoryview, str)):
        if len(raw) > MAX_MESSAGE_BYTES:
            raise EventError(MESSAGE_TOO_LARGE, f"message is {len(raw)} bytes; at most {MAX_MESSAGE_BYTES} allowed")
        raw_text = bytes(raw) if isinstance(raw, (bytearray, memoryview)) else raw
        try:
            obj = orjson.loads(raw_text)
        except orjson.JSONDecodeError as exc:
            if "depth limit" in str(exc):
                raise EventError(TOO_DEEP, f"objects and arrays are nested more than {MAX_DEPTH} levels deep") from None
            raise EventError(MALFORMED_JSON, f"not valid JSON ({str(exc)[:200]})") from None
    else:
        obj = raw
    if not isinstance(obj, Mapping):
        raise EventError(NOT_AN_OBJECT, f"expected a JSON object, got {_json_type(obj)}")
    if nested_deeper_than(obj.values(), MAX_DEPTH):
        raise EventError(TOO_DEEP, f"objects and arrays are nested more than {MAX_DEPTH} levels deep")

    event_id = _required_str(obj, "event_id", None)
    kind = obj.get("type")
    if kind == "transfer":
        return _parse_transfer(obj, event_id, watermark, raw_text)
    if kind == "disbursement":
        return _parse_disbursement(obj, event_id, watermark, raw_text)
    if kind is None:
        raise EventError(MISSING_FIELD, "missing field 'type' (expected 'disbursement' or 'transfer')", event_id=event_id)
    raise EventError(UNKNOWN_TYPE, f"unknown type {quote(kind)}; expected 'disbursement' or 'transfer'",
                     event_id=event_id)


# -- the typed fast path ------------------------------------------------------------------------------------------
# The shape nearly every event has: known fields only, text ids within their limits, text or integer `ts`, text
# `amount`, text or null optional fields. msgspec decodes it into these structs in C (UTF-8, JSON syntax, field
# names, types and lengths checked there); `_parse_typed` then applies the contract's remaining checks to the
# values. It accepts a subset of what `_parse_checked` accepts, with the same result, and returns None (or raises)
# for anything else, which then takes `_parse_checked`: extra fields, numbers as amounts, integer merchant
# categories, empty or padded values, and every refusal. tests/unit/test_event_fast_paths.py holds the two
# parsers to the same outcome on generated events.
_Id = Annotated[str, msgspec.Meta(max_length=MAX_ID_LEN)]
_Text = Annotated[str, msgspec.Meta(max_length=MAX_TEXT_FIELD_LEN)]


class _TypedTransfer(msgspec.Struct, tag="transfer", tag_field="type", forbid_unknown_fields=True, gc=False):
    event_id: _Id
    ts: Union[_Text, int]
    src: _Id
    dst: _Id
    amount: _Text
    currency: Union[str, None] = None
    channel: Union[Annotated[str, msgspec.Meta(max_length=FIELD_MAX_LEN["channel"])], None] = None
    merchant_category: Union[str, None] = None
    device_id: Union[_Id, None] = None
    ip: Union[Annotated[str, msgspec.Meta(max_length=FIELD_MAX_LEN["ip"])], None] = None


class _TypedDisbursement(msgspec.Struct, tag="disbursement", tag_field="type", forbid_unknown_fields=True,
                         gc=False):
    event_id: _Id
    ts: Union[_Text, int]
    account: _Id
    amount: _Text
    loan_id: Union[_Id, None] = None
    currency: Union[str, None] = None
    product: Union[Annotated[str, msgspec.Meta(max_length=FIELD_MAX_LEN["product"])], None] = None
    device_id: Union[_Id, None] = None
    ip: Union[Annotated[str, msgspec.Meta(max_length=FIELD_MAX_LEN["ip"])], None] = None


_TYPED = msgspec.json.Decoder(Union[_TypedTransfer, _TypedDisbursement])
# Currency codes and channel names as sent -> as kept: a handful of values, each checked and normalized once, so
# every event shares one string object per value instead of a fresh `upper()` or `strip()` of its own. Bounded.
_CURRENCIES: dict[str, str] = {}
_CHANNEL_NAMES: dict[str, str] = {}
_NAME_CACHE_SIZE = 1_000
_MAX_MINOR = MAX_UNITS * MINOR_PER_UNIT


def _parse_typed(raw: bytes | str, watermark: int | None) -> Event | None:
    """The event, when `raw` has the common shape and passes every check; None (or an exception) otherwise."""
    typed = _TYPED.decode(raw)
    event_id = typed.event_id.strip()
    if not event_id:
        return None
    ts = typed.ts
    if type(ts) is str:
        ts = _parse_text_ts(ts.strip())
    if ts < MIN_TS_MS or ts >= MAX_TS_MS or (watermark is not None and ts > watermark + MAX_FUTURE_MS):
        return None
    amount = typed.amount
    if _PLAIN_AMOUNT.fullmatch(amount) is None:
        return None
    minor = int(amount[:-3]) * MINOR_PER_UNIT + int(amount[-2:])
    if not 0 < minor <= _MAX_MINOR:
        return None
    currency = typed.currency
    if currency is None:
        currency = DEFAULT_CURRENCY
    else:
        known = _CURRENCIES.get(currency)
        if known is None:
            if _CURRENCY.fullmatch(currency) is None:
                return None
            known = currency.upper()
            if len(_CURRENCIES) < _NAME_CACHE_SIZE:
                _CURRENCIES[currency] = known
        currency = known
    device_id, ip = typed.device_id, typed.ip
    if device_id is not None:
        device_id = device_id.strip() or None
    if ip is not None:
        ip = ip.strip() or None
    if type(typed) is _TypedTransfer:
        src, dst = typed.src.strip(), typed.dst.strip()
        if not src or not dst or src == dst:
            return None
        channel = typed.channel
        if channel is None:
            channel = DEFAULT_CHANNEL
        else:
            known = _CHANNEL_NAMES.get(channel)
            if known is None:
                known = channel.strip() or DEFAULT_CHANNEL
                if len(_CHANNEL_NAMES) < _NAME_CACHE_SIZE:
                    _CHANNEL_NAMES[channel] = known
            channel = known
        mcc = typed.merchant_category
        if mcc == "":
            mcc = None
        elif mcc is not None and _MCC.fullmatch(mcc) is None:
            return None
        return Transfer(event_id, ts, src, dst, minor, currency, channel, mcc, device_id, ip)
    account = typed.account.strip()
    if not account:
        return None
    loan_id, product = typed.loan_id, typed.product
    loan_id = (loan_id.strip() or event_id) if loan_id is not None else event_id
    if product is not None:
        product = product.strip() or None
    return Disbursement(event_id, ts, loan_id, account, minor, currency, product, device_id, ip)


def _parse_disbursement(obj: Mapping[str, Any], event_id: str, watermark: int | None,
                        raw_text: bytes | str | None) -> Disbursement:
    ts = _parse_ts(obj, event_id, watermark)
    account = _required_str(obj, "account", event_id)
    amount = _parse_amount(obj, event_id, raw_text)
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


def _parse_transfer(obj: Mapping[str, Any], event_id: str, watermark: int | None,
                    raw_text: bytes | str | None) -> Transfer:
    ts = _parse_ts(obj, event_id, watermark)
    src = _required_str(obj, "src", event_id)
    dst = _required_str(obj, "dst", event_id)
    if src == dst:
        raise EventError(SELF_TRANSFER, f"src and dst are the same account {quote(src)}", event_id=event_id)
    amount = _parse_amount(obj, event_id, raw_text)
    return Transfer(
        event_id=event_id, ts=ts, src=src, dst=dst, amount=amount,
        currency=_parse_currency(obj, event_id),
        channel=_optional_str(obj, "channel", event_id) or DEFAULT_CHANNEL,
        merchant_category=_parse_mcc(obj, event_id),
        device_id=_optional_str(obj, "device_id", event_id),
        ip=_optional_str(obj, "ip", event_id),
        extra=_extra(obj, _TRANSFER_FIELDS),
    )


def _required_str(obj: Mapping[str, Any], name: str, event_id: str | None) -> str:
    if name not in obj or obj[name] is None:
        raise EventError(MISSING_FIELD, f"missing field {name!r}", event_id=event_id)
    value = obj[name]
    if not isinstance(value, str):
        raise EventError(WRONG_TYPE, f"field {name!r} must be a string, got {_json_type(value)} {quote(value)}",
                         event_id=event_id)
    value = _bounded(name, value.strip(), event_id)
    if not value:
        raise EventError(MISSING_FIELD, f"field {name!r} is empty", event_id=event_id)
    return value


def _bounded(name: str, value: str, event_id: str | None) -> str:
    limit = FIELD_MAX_LEN[name]
    if len(value) > limit:
        raise EventError(FIELD_TOO_LONG, f"field {name!r} is {len(value)} characters long; at most {limit} allowed "
                                         f"(starts {quote(value)})", event_id=event_id)
    return value


def _optional_str(obj: Mapping[str, Any], name: str, event_id: str) -> str | None:
    value = obj.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise EventError(WRONG_TYPE, f"field {name!r} must be a string or null, got {_json_type(value)}",
                         event_id=event_id)
    return _bounded(name, value.strip(), event_id) or None


def _parse_currency(obj: Mapping[str, Any], event_id: str) -> str:
    value = obj.get("currency")
    if value is None:
        return DEFAULT_CURRENCY
    if not isinstance(value, str) or not _CURRENCY.fullmatch(value):
        raise EventError(WRONG_TYPE, f"field 'currency' must be a 3-letter ISO 4217 code (ASCII letters), "
                                     f"got {quote(value)}", event_id=event_id)
    return value.upper()


_CURRENCY = re.compile(r"[A-Za-z]{3}", re.ASCII)
_MCC = re.compile(r"[0-9]{4}", re.ASCII)


def _parse_mcc(obj: Mapping[str, Any], event_id: str) -> str | None:
    """ISO 18245: four ASCII digits. A JSON integer 0-9999 is accepted and zero-padded ("742" -> "0742")."""
    mcc = obj.get("merchant_category")
    if mcc is None or mcc == "":
        return None
    if isinstance(mcc, int) and not isinstance(mcc, bool) and 0 <= mcc <= 9999:
        return f"{mcc:04d}"
    if isinstance(mcc, str) and _MCC.fullmatch(mcc):
        return mcc
    raise EventError(WRONG_TYPE, f"field 'merchant_category' must be a 4-digit ISO 18245 code or null, "
                                 f"got {_json_type(mcc)} {quote(mcc)}", event_id=event_id)


def _parse_amount(obj: Mapping[str, Any], event_id: str, raw_text: bytes | str | None = None) -> int:
    if "amount" not in obj or obj["amount"] is None:
        raise EventError(MISSING_FIELD, "missing field 'amount'", event_id=event_id)
    value = obj["amount"]
    if type(value) is str:
        if _PLAIN_AMOUNT.fullmatch(value):
            minor = int(value[:-3]) * MINOR_PER_UNIT + int(value[-2:])
            if 0 < minor <= MAX_UNITS * MINOR_PER_UNIT:
                return minor
        elif len(value) > MAX_TEXT_FIELD_LEN:
            raise EventError(FIELD_TOO_LONG, f"field 'amount' is {len(value)} characters long; at most "
                                             f"{MAX_TEXT_FIELD_LEN} allowed", event_id=event_id)
    elif type(value) is float and raw_text is not None:
        value = _exact_number(raw_text, value)
    try:
        return parse_amount_minor(value)
    except ValueError as exc:
        raise EventError(BAD_AMOUNT, str(exc), event_id=event_id) from None


def _exact_number(raw_text: bytes | str, decoded: float) -> Decimal | float:
    """The JSON number of `amount` exactly as written: a binary float would round 5.0000000000000001 to 5.0 and
    accept what the text form refuses. Only non-integer JSON numbers take this second, exact decode (rare:
    ledgers send text amounts), and only after the depth and size checks, so the recursive stdlib decoder is
    safe here."""
    try:
        exact = json.loads(raw_text, parse_float=Decimal).get("amount")
    except (ValueError, RecursionError, AttributeError):
        return decoded
    return exact if isinstance(exact, Decimal) else decoded


# '4900.00': the shape of nearly every amount, converted without Decimal; anything else takes `parse_amount_minor`.
_PLAIN_AMOUNT = re.compile(r"[0-9]{1,15}\.[0-9]{2}")


def _parse_ts(obj: Mapping[str, Any], event_id: str, watermark: int | None) -> int:
    if "ts" not in obj or obj["ts"] is None:
        raise EventError(MISSING_FIELD, "missing field 'ts'", event_id=event_id)
    value = obj["ts"]
    if isinstance(value, bool):
        raise EventError(BAD_TIMESTAMP, f"field 'ts' must be RFC 3339 text or integer epoch milliseconds, "
                                        f"got {quote(value)}", event_id=event_id)
    if isinstance(value, int):
        ts = value
    elif isinstance(value, float) and value.is_integer():
        ts = int(value)
    elif isinstance(value, str):
        if len(value) > MAX_TEXT_FIELD_LEN:
            raise EventError(FIELD_TOO_LONG, f"field 'ts' is {len(value)} characters long; at most "
                                             f"{MAX_TEXT_FIELD_LEN} allowed", event_id=event_id)
        try:
            ts = _parse_text_ts(value.strip())
        except ValueError as exc:
            raise EventError(BAD_TIMESTAMP, str(exc), event_id=event_id) from None
    else:
        raise EventError(BAD_TIMESTAMP, f"field 'ts' must be RFC 3339 text or integer epoch milliseconds, "
                                        f"got {_json_type(value)} {quote(value)}", event_id=event_id)
    if ts < MIN_TS_MS:
        raise EventError(ABSURD_TIMESTAMP, f"ts {quote(value)} is before 2000-01-01 (seconds sent as "
                                           f"milliseconds?)", event_id=event_id)
    if ts >= MAX_TS_MS:
        raise EventError(ABSURD_TIMESTAMP, f"ts {quote(value)} is after 2100-01-01 (micro- or nanoseconds sent as "
                                           f"milliseconds?)", event_id=event_id)
    if watermark is not None:
        check_not_ahead(ts, watermark, event_id)
    return ts


# Epoch ms of each minute 'YYYY-MM-DDTHH:MM' already seen in the shape producers send; bounded, cleared when full.
_MINUTE_MS: dict[str, int] = {}
_MINUTE_CACHE_SIZE = 100_000
# The rest of that shape, ':SS.' and 'mmmZ', as ms: every valid value, so that a lookup both checks and converts.
_SECOND_MS = {f":{second:02d}.": second * 1000 for second in range(60)}
_MILLI_MS = {f"{milli:03d}Z": milli for milli in range(1000)}


def _parse_text_ts(text: str) -> int:
    """`parse_rfc3339_ms`, with a shortcut for the shape nearly every event has, 'YYYY-MM-DDTHH:MM:SS.mmmZ':
    the minute is looked up (the full parser validated it the first time it was seen), seconds and millis are
    looked up among their valid values and added. Any other shape, an unseen minute or second 60 takes the full
    parser, so results are identical."""
    second = _SECOND_MS.get(text[16:20])
    milli = _MILLI_MS.get(text[20:])
    if second is not None and milli is not None:
        minute = _MINUTE_MS.get(text[:16])
        if minute is not None:
            return minute + second + milli
        ts = parse_rfc3339_ms(text)
        if len(_MINUTE_MS) >= _MINUTE_CACHE_SIZE:
            _MINUTE_MS.clear()
        _MINUTE_MS[text[:16]] = ts - second - milli
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


def quote(value: object) -> str:
    """A bounded, printable rendering of an attacker-supplied value for an error message: never `repr()` of a
    container (deep nesting would recurse) and never more than QUOTE_CHARS characters of a string."""
    if isinstance(value, str):
        shown = json.dumps(value[:QUOTE_CHARS], ensure_ascii=True)
        return shown if len(value) <= QUOTE_CHARS else f"{shown[:-1]}...\" ({len(value)} characters)"
    if value is None or isinstance(value, bool):
        return _json_type(value) if value is None else ("true" if value else "false")
    if isinstance(value, int):
        text = str(value) if -10**30 < value < 10**30 else f"an integer of {len(str(abs(value)))} digits"
        return text
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return f"an array of {len(value)} items"
    if isinstance(value, Mapping):
        return f"an object of {len(value)} keys"
    return f"a {type(value).__name__}"


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    return {bool: "boolean", int: "number", float: "number", str: "string", list: "array",
            dict: "object"}.get(type(value), type(value).__name__)


def event_key(event: Event) -> str:
    """The Kafka key of an event: the account it is about (the payer for a transfer)."""
    return event.account
