"""The simulated population and the raw ledger every generator appends to.

Events are kept as plain tuples `(ts, seq, ...)` while they are generated: `seq` is the creation number, so
sorting the list orders by event time and breaks ties deterministically, and a planted instance can remember
its events by `seq` before the final, time-ordered event ids exist. Nothing here iterates a set.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from .params import SimParams, SimulationError

MINUTE = 60_000
HOUR = 60 * MINUTE
DAY = 24 * HOUR

# Record layouts (index 2 tells them apart).
DISBURSEMENT = 0    # (ts, seq, 0, account, amount, product, device, ip, loan_handle)
TRANSFER = 1        # (ts, seq, 1, src, dst, amount, channel, mcc, device, ip)

# Everyday merchant categories (ISO 18245) with the share of card-present spending and an amount range in units.
SPENDING = (
    ("5411", 30, 15, 400),      # groceries, supermarkets
    ("5812", 14, 30, 600),      # restaurants
    ("5814", 14, 8, 80),        # fast food
    ("5541", 8, 100, 500),      # fuel
    ("4111", 8, 2, 30),         # local transit
    ("5912", 5, 10, 300),       # pharmacies
    ("5651", 6, 80, 1500),      # clothing
    ("5311", 5, 50, 1200),      # department stores
    ("4900", 3, 50, 600),       # utilities
    ("5732", 3, 300, 8000),     # electronics
    ("5712", 1, 500, 10000),    # furniture
    ("4722", 1, 500, 8000),     # travel agencies
    ("8299", 1, 300, 6000),     # education
)
LOAN_SPENDING = ("5732", "5712", "4722", "8299", "5311", "5651", "5722", "8062")
BIG_TICKET = ("5732", "5712", "5722")           # electronics, furniture, household appliances
CASH_LIKE = ("6051", "7995", "4829", "6540")   # quasi-cash, gambling, money transfer, stored-value load
BENIGN_CASH_LIKE = ("4829", "6540")              # small top-ups and remittances ordinary people make
LOAN_PRODUCTS = ("credit_line", "installment", "cash_loan")
_HOUR_WEIGHTS = (1, 0.6, 0.4, 0.3, 0.3, 0.5, 1.2, 2.5, 4, 5, 6, 6.5, 8, 7, 6, 6, 6, 7, 8, 9, 9, 7, 4, 2)


@dataclass(frozen=True, slots=True)
class Variant:
    """How one planted instance departs from its typology's plain form: the evasive variant (`--evasive`), or
    parameters drawn from wide ranges (`--spread`). The plain form is `Variant()`."""

    name: str | None = None          # the truth's label; None: plain
    pace: float = 1.0                # every delay of the instance times this
    fee: float = 1.0                 # mule fees times this (a 0.5-3% fee at 1; 10 makes it 5-30%)
    # None: cash-outs take the whole amount in one or two withdrawals. Else (low, width): a share of
    # low + width * U(0, 1) is withdrawn in `pieces` pieces 2-15 minutes (times the pace) apart.
    cashout_share: tuple[float, float] | None = None
    pieces: tuple[int, int] = (3, 6)
    extra_hops: int = 0              # layering chains and cycles up to this many hops longer
    takeover_share: float = 0.8      # least share of a taken-over loan moved out (account_takeover)

    def to_dict(self) -> dict[str, float | int]:
        data: dict[str, float | int] = {"pace": round(self.pace, 3), "fee": round(self.fee, 3),
                                        "extra_hops": self.extra_hops}
        if self.cashout_share is not None:
            data["cashout_share_low"] = round(self.cashout_share[0], 3)
        return data


PLAIN = Variant()
EVASIVE = Variant(name="evasive", pace=4.0, fee=3.0, cashout_share=(0.6, 0.25), pieces=(3, 6))


def draw_variant(rng: random.Random, spread: float) -> Variant:
    """Parameters of one instance drawn from ranges that widen with `spread` (0..1). At 1: delays 1-8x (hops
    that rest up to 4 h), fees up to 30% (70% passed on), cash-outs of 60-100% in up to 6 pieces, layering
    chains up to 8 hops, takeovers moving 70% or more (docs/simulator.md, "Spread")."""
    pace = (1 + 7 * spread) ** rng.random()
    fee = 1 + 9 * spread * rng.random()
    split = rng.random() < spread
    share = (1 - 0.4 * spread, 0.4 * spread) if split else None
    pieces = (2, 2 + max(1, round(4 * spread)))
    extra = rng.randint(0, round(2 * spread))
    return Variant(name="spread", pace=pace, fee=fee, cashout_share=share, pieces=pieces, extra_hops=extra,
                   takeover_share=0.8 - 0.1 * spread)


@dataclass(frozen=True, slots=True)
class Account:
    account_id: str
    device: str
    ip: str
    card: str               # the external bank card its withdrawals go to
    community: int          # index into World.communities: the friends it pays


class Ledger:
    """An append-only list of raw event tuples plus the loan counter."""

    __slots__ = ("records", "next_seq", "loan_count")

    def __init__(self) -> None:
        self.records: list[tuple] = []
        self.next_seq = 0
        self.loan_count = 0

    def transfer(self, ts: int, src: Account | str, dst: str, amount: int, channel: str = "p2p",
                 mcc: str | None = None, device: str | None = None, ip: str | None = None) -> int:
        if isinstance(src, Account):
            device = device or src.device
            ip = ip or src.ip
            src = src.account_id
        seq = self.next_seq
        self.next_seq = seq + 1
        self.records.append((ts, seq, TRANSFER, src, dst, amount, channel, mcc, device, ip))
        return seq

    def disburse(self, ts: int, account: Account, amount: int, product: str,
                 device: str | None = None, ip: str | None = None) -> tuple[int, int]:
        """Returns (seq, loan handle); the loan id is given after sorting, in disbursement order."""
        seq = self.next_seq
        self.next_seq = seq + 1
        loan = self.loan_count
        self.loan_count = loan + 1
        self.records.append((ts, seq, DISBURSEMENT, account.account_id, amount, product,
                             device or account.device, ip or account.ip, loan))
        return seq, loan


class World:
    """Accounts, merchants and the clock of one simulation, all drawn from one seeded `random.Random`."""

    def __init__(self, params: SimParams, rng: random.Random) -> None:
        self.params = params
        self.rng = rng
        self.start = params.start_ms
        self.end = self.start + params.days * DAY
        self.accounts: list[Account] = []
        self.communities: list[list[Account]] = []
        width = max(6, len(str(params.accounts * 2)))
        ids = [f"U{n:0{width}d}" for n in range(10 ** (width - 1), 10 ** (width - 1) + params.accounts)]
        order = list(range(params.accounts))
        rng.shuffle(order)      # communities are not blocks of consecutive ids
        community = -1
        left = 0
        for index in order:
            if left == 0:
                community += 1
                self.communities.append([])
                left = rng.randint(6, 20)
            account = Account(ids[index], self.new_device(), self.new_ip(), self.new_card(), community)
            self.communities[community].append(account)
            left -= 1
        by_id = {}
        for group in self.communities:
            for account in group:
                by_id[account.account_id] = account
        self.accounts = [by_id[i] for i in ids]
        self._next_new_account = 10 ** (width - 1) + params.accounts
        self._width = width
        self._free = list(self.accounts)
        rng.shuffle(self._free)
        self._business = 0
        self._reserved_merchants: dict[str, bool] = {}
        self.merchants: dict[str, list[str]] = {}
        number = 0
        for mcc in tuple(m[0] for m in SPENDING) + ("5722", "8062") + CASH_LIKE:
            count = max(2, params.accounts // 200) if mcc not in CASH_LIKE else 3
            self.merchants[mcc] = [f"M{number + k:05d}" for k in range(count)]
            number += count
        self.hour_table = _hour_table()
        # The variant of the planted instance being built (see `Variant`); plain outside planting.
        self.variant = PLAIN

    # Identities -----------------------------------------------------------------------------------------
    def new_device(self) -> str:
        return f"dev-{self.rng.getrandbits(40):010x}"

    def new_ip(self) -> str:
        r = self.rng.getrandbits(24)
        return f"10.{r >> 16}.{(r >> 8) & 255}.{r & 255}"

    def new_card(self) -> str:
        return f"card:62{self.rng.randrange(10 ** 14):014d}"

    def reserve(self, count: int, purpose: str) -> list[Account]:
        """`count` background accounts no other planted or look-alike instance uses: labels stay unambiguous."""
        if count > len(self._free):
            raise SimulationError(
                f"not enough accounts for {purpose}: need {count} more, {len(self._free)} left of "
                f"{self.params.accounts}; raise --accounts or lower --instances/--lookalikes")
        taken = self._free[-count:]
        del self._free[-count:]
        return taken

    def register_batch(self, count: int, device: str, ip: str) -> list[Account]:
        """Accounts opened together (consecutive ids) from one device: the signature of a mule farm."""
        batch = []
        for _ in range(count):
            account_id = f"U{self._next_new_account:0{self._width}d}"
            self._next_new_account += 1
            batch.append(Account(account_id, device, ip, self.new_card(), -1))
        return batch

    def open_accounts(self, count: int) -> list[Account]:
        """`count` customers new to the ledger, each with a phone, network and card of their own. The identity
        typologies and their look-alikes take these, not background accounts, so adding them left every older
        instance of a seed as it was; the history a case needs (an owner's purchases) is generated with it."""
        batch = []
        for _ in range(count):
            account_id = f"U{self._next_new_account:0{self._width}d}"
            self._next_new_account += 1
            batch.append(Account(account_id, self.new_device(), self.new_ip(), self.new_card(), -1))
        return batch

    def register_linked(self, count: int, devices: list[str], ips: list[str]) -> list[Account]:
        """Accounts opened together and run from a few phones and networks: the n-th uses device n mod D and IP
        (n div D) mod len(ips), so the first D share the first IP and every later one shares a device with one
        of them: one linked group."""
        batch = []
        width = len(devices)
        for n in range(count):
            account_id = f"U{self._next_new_account:0{self._width}d}"
            self._next_new_account += 1
            batch.append(Account(account_id, devices[n % width], ips[(n // width) % len(ips)], self.new_card(), -1))
        return batch

    def new_business(self) -> Account:
        self._business += 1
        return Account(f"B{self._business:05d}", f"srv-{self.rng.getrandbits(32):08x}", self.new_ip(),
                       self.new_card(), -1)

    def reserve_merchant(self, mcc: str) -> str:
        """A merchant of `mcc` no other look-alike uses."""
        for _ in range(100):
            shop = self.merchant(mcc)
            if shop not in self._reserved_merchants:
                self._reserved_merchants[shop] = True
                return shop
        raise SimulationError(f"not enough merchants of category {mcc} for the look-alikes; raise --accounts")

    def merchant(self, mcc: str) -> str:
        shops = self.merchants[mcc]
        return shops[int(self.rng.random() * len(shops))]

    # Time and money -------------------------------------------------------------------------------------
    def time_of_day(self) -> int:
        """Milliseconds into a day, busier in the day and evening than at night."""
        rng = self.rng
        return self.hour_table[int(rng.random() * len(self.hour_table))] * HOUR + int(rng.random() * HOUR)

    def instance_start(self, span: int, after: int = 0) -> int:
        """A start time at least `after` ms into the ledger such that an instance lasting `span` ms ends inside
        it."""
        rng = self.rng
        days = self.params.days
        span = int(span * self.variant.pace)
        after = min(after, max(0, self.end - self.start - span - 1))     # a ledger too short for the history
        for _ in range(50):
            ts = self.start + rng.randrange(days) * DAY + self.time_of_day()
            if ts + span < self.end and ts >= self.start + after:
                return ts
        first = self.start + after
        return first + rng.randrange(max(1, self.end - first - span))

    def fit(self, span: int) -> int:
        """`span`, or half the ledger when the ledger is shorter than twice that (`--days 1`)."""
        return min(span, max(HOUR, (self.end - self.start) // 2))

    def amount(self, low: float, high: float, *, whole: bool = False) -> int:
        """A log-uniform amount in minor units between `low` and `high` units."""
        rng = self.rng
        units = low * (high / low) ** rng.random()
        if whole:
            return max(100, int(units) * 100)
        return max(1, int(units * 100))

    def minutes(self, low: float, high: float) -> int:
        return int((low + (high - low) * self.rng.random()) * MINUTE * self.variant.pace)


def _hour_table() -> list[int]:
    total = sum(_HOUR_WEIGHTS)
    table: list[int] = []
    for hour, weight in enumerate(_HOUR_WEIGHTS):
        table.extend([hour] * round(weight / total * 1000))
    return table


def keep_most(world: World, amount: int, low: float = 0.005, high: float = 0.03) -> int:
    """What a mule forwards after taking a small fee (`low`..`high` of the amount)."""
    fee = world.variant.fee
    if fee != 1.0:
        low, high = fee * low, fee * high
    fee = int(amount * (low + (high - low) * world.rng.random()))
    return max(1, amount - fee)


def split(world: World, total: int, parts: int, jitter: float = 0.3) -> list[int]:
    """`total` split into `parts` uneven positive pieces that add up exactly."""
    rng = world.rng
    weights = [1 + jitter * (2 * rng.random() - 1) for _ in range(parts)]
    scale = total / sum(weights)
    pieces = [max(1, int(w * scale)) for w in weights]
    pieces[-1] = max(1, total - sum(pieces[:-1]))
    return pieces


@dataclass
class Group:
    """One labelled instance while it is built: its events by `seq`, its loans by handle."""

    kind: str
    key: str
    accounts: list[str]
    seqs: list[int]
    loans: list[int]

    def add(self, seq: int) -> int:
        self.seqs.append(seq)
        return seq


def new_group(kind: str, key: str, accounts: list[Account] | list[str]) -> Group:
    ids = [a.account_id if isinstance(a, Account) else a for a in accounts]
    return Group(kind, key, ids, [], [])
