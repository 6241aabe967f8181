"""What a simulated ledger looks like: every knob of `fundflow simulate`, checked when it is built.

The defaults give a ledger small enough to replay in seconds (about 35k events) yet with every planted
typology and every look-alike present several times.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timezone

from ..errors import FundflowError

IDENTITY_KINDS = ("identity_ring", "account_takeover")
PLANTED_KINDS = ("rapid_cashout", "layering", "fan_in", "fan_out", "scatter_gather", "gather_scatter",
                 "cycle", "device_burst", *IDENTITY_KINDS)
FIRST_LOOKALIKE_KINDS = ("loan_spent_at_once", "dinner_split", "payroll_fan_out", "merchant_collection",
                         "friends_p2p")
LATER_LOOKALIKE_KINDS = ("shared_household", "campus_network", "new_phone", "family_relay", "small_business_p2p",
                         "friend_repays")
LOOKALIKE_KINDS = FIRST_LOOKALIKE_KINDS + LATER_LOOKALIKE_KINDS

MAX_DAYS = 3650
MAX_ACCOUNTS = 10_000_000


class SimulationError(FundflowError):
    """The simulation cannot be built as asked (bad parameter, too few accounts for the planted instances)."""


@dataclass(frozen=True)
class SimParams:
    seed: int = 7
    accounts: int = 2000                 # ordinary retail accounts in the background
    days: int = 7                        # length of the ledger in days of event time
    instances: int = 5                   # planted instances per typology
    lookalikes: int | None = None        # benign look-alike instances per kind; None -> same as `instances`
    background_per_day: int = 5000       # ordinary events per day (loans, spending, p2p, withdrawals)
    start: str = "2026-03-01"            # first day (UTC) of the ledger
    currency: str = "CNY"
    kinds: tuple[str, ...] = field(default=PLANTED_KINDS)   # which typologies to plant
    bad_events: int = 0                  # malformed events mixed in, for the dead-letter path
    evasive: float = 0.0                 # share of planted instances in the slower, split, costlier variant
    spread: float = 0.0                  # 0..1: how wide the ranges each planted instance's parameters come from

    def __post_init__(self) -> None:
        _check_int("seed", self.seed, minimum=0)
        _check_int("accounts", self.accounts, minimum=50, maximum=MAX_ACCOUNTS)
        _check_int("days", self.days, minimum=1, maximum=MAX_DAYS)
        _check_int("instances", self.instances, minimum=0, maximum=100_000)
        if self.lookalikes is not None:
            _check_int("lookalikes", self.lookalikes, minimum=0, maximum=100_000)
        _check_int("background_per_day", self.background_per_day, minimum=0, maximum=100_000_000)
        _check_int("bad_events", self.bad_events, minimum=0, maximum=10_000_000)
        if isinstance(self.evasive, bool) or not isinstance(self.evasive, (int, float)) \
                or not 0.0 <= self.evasive <= 1.0:
            raise SimulationError(f"evasive must be a share between 0 and 1, got {self.evasive!r}")
        if isinstance(self.spread, bool) or not isinstance(self.spread, (int, float)) \
                or not 0.0 <= self.spread <= 1.0:
            raise SimulationError(f"spread must be between 0 (plain) and 1 (widest ranges), got {self.spread!r}")
        start_ms(self.start)
        if not (isinstance(self.currency, str) and len(self.currency) == 3 and self.currency.isalpha()):
            raise SimulationError(f"currency must be a 3-letter ISO 4217 code, got {self.currency!r}")
        unknown = [k for k in self.kinds if k not in PLANTED_KINDS]
        if unknown:
            raise SimulationError(f"unknown typology {unknown[0]!r}; expected some of {', '.join(PLANTED_KINDS)}")

    @property
    def lookalikes_per_kind(self) -> int:
        return self.instances if self.lookalikes is None else self.lookalikes

    @property
    def start_ms(self) -> int:
        return start_ms(self.start)

    def to_dict(self) -> dict[str, object]:
        return {"seed": self.seed, "accounts": self.accounts, "days": self.days, "instances": self.instances,
                "lookalikes": self.lookalikes_per_kind, "background_per_day": self.background_per_day,
                "start": self.start, "currency": self.currency, "kinds": list(self.kinds), "bad_events": self.bad_events, "evasive": self.evasive,
                **({"spread": self.spread} if self.spread else {})}


def start_ms(text: str) -> int:
    """'2026-03-01' -> epoch ms of that midnight UTC."""
    try:
        day = date.fromisoformat(text)
    except (TypeError, ValueError):
        raise SimulationError(f"start must be a date like 2026-03-01, got {text!r}") from None
    if not 2000 <= day.year <= 2090:
        raise SimulationError(f"start must be between 2000 and 2090, got {text!r}")
    return int(datetime(day.year, day.month, day.day, tzinfo=timezone.utc).timestamp()) * 1000


def _check_int(name: str, value: object, *, minimum: int, maximum: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SimulationError(f"{name} must be an integer, got {value!r}")
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
        raise SimulationError(f"{name} must be {bound}, got {value}")
