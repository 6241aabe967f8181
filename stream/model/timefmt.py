"""Event time: parsing RFC 3339 / epoch-ms timestamps, formatting them, and analyst durations like `30m`.

All times inside fundflow are integer epoch milliseconds (UTC): cheap to compare, exact, and free of
time-zone surprises. Formatting back to RFC 3339 happens only at the edges (warnings, logs).
"""

from __future__ import annotations

import re
from datetime import datetime, timezone

MS_PER_SECOND = 1000
MS_PER_MINUTE = 60 * MS_PER_SECOND
MS_PER_HOUR = 60 * MS_PER_MINUTE
MS_PER_DAY = 24 * MS_PER_HOUR

_DURATION_UNITS = {"ms": 1, "s": MS_PER_SECOND, "m": MS_PER_MINUTE, "h": MS_PER_HOUR,
                   "d": MS_PER_DAY, "w": 7 * MS_PER_DAY}
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$")
# RFC 3339: date 'T' time, optional fraction, then Z or ±hh:mm. A space instead of 'T' is tolerated.
# ASCII digits only (`re.ASCII`): '٢٠٢٦' is a digit to Python's \d, not to the event contract.
_RFC3339_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$", re.ASCII)


def parse_duration_ms(text: str | int | float) -> int:
    """`30m` -> 1_800_000. Bare numbers are seconds. Raises ValueError with the accepted forms."""
    if isinstance(text, bool):
        raise ValueError(f"expected a duration like 30m, 2h or 1d, got {text!r}")
    if isinstance(text, (int, float)):
        if text != text or text in (float("inf"), float("-inf")):
            raise ValueError(f"a duration must be a finite number, got {text!r}")
        if text < 0:
            raise ValueError(f"a duration cannot be negative, got {text!r}")
        return int(text * MS_PER_SECOND)
    match = _DURATION_RE.match(str(text))
    if not match:
        raise ValueError(f"expected a duration like 90s, 30m, 2h, 1d or 1w, got {text!r}")
    number, unit = match.groups()
    return int(float(number) * _DURATION_UNITS[unit])


def format_duration_ms(ms: int) -> str:
    """The shortest exact analyst form: 5400000 -> '90m', 86400000 -> '1d'."""
    for unit in ("w", "d", "h", "m", "s"):
        size = _DURATION_UNITS[unit]
        if ms and ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def parse_rfc3339_ms(text: str) -> int:
    """RFC 3339 -> epoch ms. Raises ValueError naming the expected shape.

    Seconds are 00-59: a leap second (:60) is refused rather than folded into :59, because two distinct
    instants would then share one time, and ledgers that smear leap seconds never send :60."""
    match = _RFC3339_RE.match(text)
    if not match:
        raise ValueError(
            f"expected RFC 3339 like 2026-03-02T10:15:00.000Z (with Z or an offset) or epoch milliseconds, "
            f"got {text!r}")
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    try:
        tz = timezone.utc
        if offset not in ("Z", "z"):
            sign = 1 if offset[0] == "+" else -1
            hours, minutes = int(offset[1:3]), int(offset[4:6])
            from datetime import timedelta
            tz = timezone(sign * timedelta(hours=hours, minutes=minutes))
        if int(second) > 59:
            raise ValueError(f"second {second} out of range 00-59 (leap seconds are not accepted)")
        moment = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), tzinfo=tz)
        seconds = int(moment.timestamp())
    except (ValueError, OverflowError) as exc:
        raise ValueError(f"not a real date/time: {text!r} ({exc})") from None
    millis = int((fraction or ".0")[1:].ljust(3, "0")[:3])
    return seconds * MS_PER_SECOND + millis


def format_ts(ms: int) -> str:
    """Epoch ms -> '2026-03-02T10:15:00.000Z' (the one output format of fundflow)."""
    seconds, millis = divmod(ms, MS_PER_SECOND)
    moment = datetime.fromtimestamp(seconds, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{millis:03d}Z"
