"""Money as integer minor units (cents): exact, fast to add, never a binary float.

Amounts arrive as decimal strings or JSON numbers with at most two decimals; they leave as decimal strings.
"""

from __future__ import annotations

from decimal import Context, Decimal, Inexact, InvalidOperation, Overflow

MINOR_PER_UNIT = 100
MAX_MINOR = 10**15  # 10 trillion units: anything larger is a producer bug, not a loan.
MAX_UNITS = MAX_MINOR // MINOR_PER_UNIT
# Amounts are at most 13 integer digits; 40 digits of precision makes every in-range product exact, and
# trapping Inexact turns any would-be rounding into a refusal.
_EXACT = Context(prec=40, traps=[Inexact, Overflow, InvalidOperation])


def parse_amount_minor(value: object) -> int:
    """'4900.00' / 4900 / 4900.5 -> minor units. Raises ValueError saying what is wrong with the amount.

    The checks run on the exact decimal before any conversion, so a hostile '1e999999999' is refused at
    once instead of building a billion-digit integer, and no digit is ever rounded away silently.
    """
    if isinstance(value, bool) or not isinstance(value, (str, int, float, Decimal)):
        raise ValueError(f"amount must be a decimal string or a number, got {type(value).__name__} {_show(value)}")
    if isinstance(value, int):
        number = Decimal(value)
    else:
        try:
            # repr() of a float is the shortest round-tripping text, so 0.1 stays 0.1, not 0.1000000000000000055.
            number = Decimal(repr(value) if isinstance(value, float) else str(value).strip())
        except InvalidOperation:
            raise ValueError(f"amount is not a number: {_show(value)}") from None
    if not number.is_finite():
        raise ValueError(f"amount must be a finite number, got {_show(value)}")
    if number <= 0:
        raise ValueError(f"amount must be greater than 0, got {_show(value)}")
    if number > MAX_UNITS:
        raise ValueError(f"amount {_show(value)} is larger than {MAX_UNITS} and cannot be real")
    try:
        scaled = _EXACT.multiply(number, MINOR_PER_UNIT)
    except Inexact:     # digits beyond the context's precision: necessarily far past the cents
        scaled = None
    if scaled is None or scaled != scaled.to_integral_value():
        raise ValueError(f"amount has more than 2 decimals: {_show(value)}")
    return int(scaled)


def _show(value: object) -> str:
    """A bounded rendering of the offending value: amounts are attacker-controlled."""
    if isinstance(value, int) and not -10**30 < value < 10**30:
        return f"an integer of {len(str(abs(value))) if abs(value) < 10**4000 else 'over 4000'} digits"
    if isinstance(value, str) and len(value) > 60:
        return f"{value[:40]!r}... ({len(value)} characters)"
    if not isinstance(value, (str, int, float, Decimal)):
        return f"a {type(value).__name__}"
    text = str(value) if isinstance(value, Decimal) else repr(value)
    return text if len(text) <= 60 else f"{text[:40]}... ({len(text)} characters)"


def format_minor(minor: int) -> str:
    """4851_00 -> '4851.00'."""
    sign = "-" if minor < 0 else ""
    units, cents = divmod(abs(minor), MINOR_PER_UNIT)
    return f"{sign}{units}.{cents:02d}"


def minor_to_decimal(minor: int) -> Decimal:
    return Decimal(minor).scaleb(-2)
