"""One canonical text per identifier type, so that two institutions that saw the same card, device or IP compute
the same keyed hash. Every refusal says why; a refused identifier is never published nor looked up.

| type          | normalized form                                                                             |
|---------------|---------------------------------------------------------------------------------------------|
| `card`        | the digits of the card number: a `card:` prefix, spaces, `-` and `.` removed; 12-19 digits    |
| `device`      | trimmed and case-folded (`Dev-1A2B ` -> `dev-1a2b`); a `device:` prefix removed; 1-256 chars |
| `ip`          | `ipaddress`'s canonical form (`010.000.000.007` refused, `::FFFF:10.0.0.7` -> `10.0.0.7`,     |
|               | IPv6 compressed and lower-case); an `ip:` prefix removed                                    |
| `phone`       | E.164 digits: `+`, spaces, `-`, `.`, `(`, `)` removed, a leading `00` dropped; 8-15 digits   |
|               | (the number must carry its country code: `+86 138 0013 8000` -> `8613800138000`)            |
| `national_id` | trimmed, inner spaces removed, upper-case (`11010519491231002x` -> `11010519491231002X`)     |
"""

from __future__ import annotations

import ipaddress

TYPES = ("card", "device", "ip", "phone", "national_id")
MAX_IDENTIFIER = 256


class Refused(ValueError):
    """This value is not an identifier of this type; the message says why."""


def normalize(kind: str, value: object) -> str:
    """The canonical text of `value` as an identifier of type `kind`, or `Refused`."""
    try:
        function = _BY_TYPE[kind]
    except KeyError:
        raise Refused(f"unknown indicator type {kind!r}; known: {', '.join(TYPES)}") from None
    if not isinstance(value, str):
        raise Refused(f"a {kind} is text, got {type(value).__name__}")
    if len(value) > MAX_IDENTIFIER:
        raise Refused(f"a {kind} of {len(value)} characters; at most {MAX_IDENTIFIER}")
    return function(value)


def try_normalize(kind: str, value: object) -> str | None:
    """`normalize`, or None when refused (the lookup path: a value that is no identifier is simply not listed)."""
    try:
        return normalize(kind, value)
    except Refused:
        return None


def _strip_prefix(text: str, prefix: str) -> str:
    return text[len(prefix):] if text[:len(prefix)].lower() == prefix else text


def _card(value: str) -> str:
    text = _strip_prefix(value.strip(), "card:")
    digits = "".join(ch for ch in text if ch not in " -.")
    if not digits.isascii() or not digits.isdigit():
        raise Refused(f"a card number is 12-19 digits (spaces and - allowed); {value[:40]!r} has other characters")
    if not 12 <= len(digits) <= 19:
        raise Refused(f"a card number is 12-19 digits; {value[:40]!r} has {len(digits)}")
    return digits


def _device(value: str) -> str:
    text = _strip_prefix(value.strip(), "device:").strip().casefold()
    if not text:
        raise Refused("an empty device id")
    return text


def _ip(value: str) -> str:
    text = _strip_prefix(value.strip(), "ip:").strip()
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise Refused(f"not an IPv4 or IPv6 address: {value[:60]!r}") from None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.compressed


def _phone(value: str) -> str:
    text = "".join(ch for ch in value.strip() if ch not in " -.()")
    if text.startswith("+"):
        text = text[1:]
    elif text.startswith("00"):
        text = text[2:]
    if not text.isascii() or not text.isdigit():
        raise Refused(f"a phone number is digits with its country code (E.164); {value[:40]!r} has other "
                      f"characters")
    if not 8 <= len(text) <= 15:
        raise Refused(f"an E.164 phone number has 8-15 digits with its country code; {value[:40]!r} has {len(text)}")
    return text


def _national_id(value: str) -> str:
    text = "".join(value.split()).upper()
    if not text:
        raise Refused("an empty national id")
    return text


_BY_TYPE = {"card": _card, "device": _device, "ip": _ip, "phone": _phone, "national_id": _national_id}
