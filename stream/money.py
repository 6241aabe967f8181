"""Money as integer minor units (cents): exact, fast to add, never a binary float.

Amounts arrive as decimal strings or JSON numbers with at most two decimals; they leave as decimal strings.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

MINOR_PER_UNIT = 100
MAX_MINOR = 10**15  # 10 trillion units: anything larger is a producer bug, not a loan.


def parse_amount_minor(value: object) -> int:
    """'4900.00' / 4900 / 4900.5 -> minor units. Raises ValueError saying what is wrong with the amount."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float, Decimal)):
        raise ValueError(f"amount must be a decimal string or a number, got {type(value).__name__} {value!r}")
    if isinstance(value, int):
        minor = value * MINOR_PER_UNIT
    else:
        try:
            # repr() of a float is the shortest round-tripping text, so 0.1 stays 0.1, not 0.1000000000000000055.
            number = Decimal(repr(value) if isinstance(value, float) else str(value).strip())
        except InvalidOperation:
            raise ValueError(f"amount is not a number: {value!r}") from None
        if not number.is_finite():
            raise ValueError(f"amount must be a finite number, got {value!r}")
        scaled = number * MINOR_PER_UNIT
        if scaled != scaled.to_integral_value():
            raise ValueError(f"amount has more than 2 decimals: {value!r}")
        minor = int(scaled)
    if minor <= 0:
        raise ValueError(f"amount must be greater than 0, got {value!r}")
    if minor > MAX_MINOR:
        raise ValueError(f"amount {value!r} is larger than {MAX_MINOR // MINOR_PER_UNIT} and cannot be real")
    return minor


def format_minor(minor: int) -> str:
    """4851_00 -> '4851.00'."""
    sign = "-" if minor < 0 else ""
    units, cents = divmod(abs(minor), MINOR_PER_UNIT)
    return f"{sign}{units}.{cents:02d}"


def minor_to_decimal(minor: int) -> Decimal:
    return Decimal(minor).scaleb(-2)
