"""The fund tracer: where each disbursed amount has gone, hop by hop.

Every account holds *lots*: amounts of money of a known origin (a loan, or optionally a large inflow of unknown
origin) together with the path they travelled (accounts, txn ids, times). When money leaves an account the
outflow is allocated to the lots it holds, by policy:

- `lifo` (default): the outflow carries the money that arrived last. Money passed through an account is
  usually forwarded as soon as it arrives, and that forwarding is exactly what rapid cash-out and layering are
  about; FIFO would attribute a forwarded loan to whatever older lots still sit in the account and break the
  chain, proportional would smear it over all of them and dilute every share.
- `fifo`: the oldest money leaves first (the accounting convention).
- `proportional`: every lot gives its share of the outflow (the neutral, "haircut" view).

An outflow larger than the traced holdings carries money of unknown origin for the rest; it is reported as such
in the `Allocation`, and (when `trace_inflows_above` is set) a large enough unknown part arriving at an account
starts a new lot of its own, so that non-loan money can be followed too.

The state is keyed by account and every hop is explicit: `take` removes money from the source account and
returns the pieces it carries, `deposit` hands them to the destination. A partitioned deployment can run the two
halves on the workers owning each account and ship the pieces between them (docs/architecture.md, invariant 7).

Bounded cost: at most `max_lots_per_account` lots per account (the smallest leaves when a new one arrives),
pieces below `min_lot_amount` merge into a lot of the same origin at the destination or are dropped, paths are
at most `max_path_hops` long, and lots expire when their origin leaves the window.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from sys import intern
from typing import Iterable

import msgspec

from ..model.defaults import TRACER_POLICIES as POLICIES
from ..model.events import Disbursement, Transfer


class _Record(msgspec.Struct, frozen=True, gc=False):
    """The tracer's value records (origins, hops, lots, allocations, exits) are immutable C structs: one is made
    for every hop of traced money and one allocation for every transfer, and a struct is built in C from its
    arguments where a frozen dataclass sets each field through `object.__setattr__`. Being immutable, each
    refers only to objects made before it (strings, numbers, events, tuples of older records), so none can be
    part of a reference cycle: they are left out of the cyclic collector (gc=False), whose young collections
    would otherwise scan every one a replay makes."""


@dataclass(frozen=True, slots=True)
class TracerOptions:
    policy: str = "lifo"
    trace_inflows_above: int | None = None   # minor units; None: follow loan money only
    max_lots_per_account: int = 32
    min_lot_amount: int = 100                 # minor units (1.00): smaller pieces merge or drop
    max_path_hops: int = 10
    max_exits_per_loan: int = 256

    @classmethod
    def from_settings(cls, settings: object) -> "TracerOptions":
        """The operator's choices (`tracer_policy`, `trace_inflows_above` of `stream.settings.Settings`)."""
        return cls(policy=getattr(settings, "tracer_policy", "lifo"),
                   trace_inflows_above=getattr(settings, "trace_inflows_above", None))

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise ValueError(f"tracer policy must be one of {', '.join(POLICIES)}, got {self.policy!r}")
        if self.max_lots_per_account < 1:
            raise ValueError(f"max_lots_per_account must be at least 1, got {self.max_lots_per_account}")
        if self.max_path_hops < 1:
            raise ValueError(f"max_path_hops must be at least 1, got {self.max_path_hops}")
        if self.trace_inflows_above is not None and self.trace_inflows_above <= 0:
            raise ValueError(f"trace_inflows_above must be a positive amount or None, got {self.trace_inflows_above}")


class Origin(_Record, frozen=True, gc=False):
    """Where a lot of money was first seen: a disbursement (loan) or a traced inflow of unknown origin."""

    id: str            # the loan id, or the inflow's txn id
    is_loan: bool
    event_id: str
    account: str       # the borrower, or the sender of the inflow
    ts: int
    amount: int
    disbursement: Disbursement | None = None   # the loan itself (what `where` and currencies read), shared


class Hop(_Record, frozen=True, gc=False):
    txn_id: str
    src: str
    dst: str           # node name (an account, or an external node like card:...)
    ts: int
    amount: int        # how much of this lot the transfer carried


class Lot(_Record, frozen=True, gc=False):
    origin: Origin
    amount: int
    path: tuple[Hop, ...]   # transfers since the origin account, oldest first
    arrived: int            # when it reached the account holding it (the origin ts for a fresh loan)

    @property
    def hops(self) -> int:
        return len(self.path)

    @property
    def accounts(self) -> tuple[str, ...]:
        return (self.origin.account, *(hop.dst for hop in self.path))

    @property
    def txn_ids(self) -> tuple[str, ...]:
        return ((self.origin.event_id,) if self.origin.is_loan else ()) + tuple(hop.txn_id for hop in self.path)


class Allocation(_Record, frozen=True, gc=False):
    """What one transfer carried: pieces of known origin (each with its path, this hop included) and the rest,
    of unknown origin."""

    txn_id: str
    src: str
    dst: str
    ts: int
    amount: int
    pieces: tuple[Lot, ...]
    unknown: int
    loan_amount: int = 0                 # minor units of the pieces traced to loans
    loan_ids: tuple[str, ...] = ()       # their loans, sorted


def make_allocation(t: Transfer, dst_node: str, pieces: tuple[Lot, ...], unknown: int) -> Allocation:
    loan_amount = 0
    loans = set()
    for piece in pieces:
        if piece.origin.is_loan:
            loan_amount += piece.amount
            loans.add(piece.origin.id)
    return Allocation(txn_id=t.event_id, src=t.src, dst=dst_node, ts=t.ts, amount=t.amount, pieces=pieces,
                      unknown=unknown, loan_amount=loan_amount, loan_ids=tuple(sorted(loans)))


class Exit(_Record, frozen=True, gc=False):
    """A piece of a loan that left the ledger (a withdrawal, a merchant payment...)."""

    piece: Lot
    channel: str
    merchant_category: str | None


@dataclass(slots=True)
class LoanRecord:
    disbursement: Disbursement
    exits: list[Exit] = field(default_factory=list)
    exits_dropped: int = 0


@dataclass(slots=True)
class TracerCounters:
    lots_evicted: int = 0          # pushed out by the per-account cap
    amount_evicted: int = 0
    dust_dropped: int = 0          # pieces below min_lot_amount with nothing to merge into
    path_exhausted: int = 0        # lots that travelled more than max_path_hops
    lots_expired: int = 0
    unknown_amount: int = 0        # outflow of unknown origin, minor units


class FundTracer:
    def __init__(self, options: TracerOptions | None = None) -> None:
        self.options = options or TracerOptions()
        self._holdings: dict[str, list[Lot]] = {}
        self._loans: dict[str, LoanRecord] = {}
        # (origin ts, account) and (disbursement ts, loan id): ties pop in key order, which changes nothing, since
        # each entry only makes `expire` look at its own account or loan (no sequence number to keep per lot).
        self._lot_expiry: list[tuple[int, str]] = []
        self._loan_expiry: list[tuple[int, str]] = []
        self.counters = TracerCounters()

    # -- reads ---------------------------------------------------------------------------------------------
    def holdings(self, account: str) -> tuple[Lot, ...]:
        return tuple(self._holdings.get(account, ()))

    def loan(self, loan_id: str) -> LoanRecord | None:
        return self._loans.get(loan_id)

    @property
    def lot_count(self) -> int:
        return sum(len(lots) for lots in self._holdings.values())

    @property
    def loan_count(self) -> int:
        return len(self._loans)

    # -- updates -------------------------------------------------------------------------------------------
    def disburse(self, d: Disbursement) -> Lot:
        """A loan lands on the borrower's account: a new lot, and a record its exits are counted against."""
        if d.loan_id not in self._loans:
            self._loans[d.loan_id] = LoanRecord(d)
            self._push(self._loan_expiry, d.ts, d.loan_id)
        origin = Origin(id=d.loan_id, is_loan=True, event_id=d.event_id, account=d.account, ts=d.ts, amount=d.amount,
                        disbursement=d)
        lot = Lot(origin=origin, amount=d.amount, path=(), arrived=d.ts)
        self._add_lots(d.account, [lot])
        return lot

    def transfer(self, t: Transfer, dst_node: str, external: bool, cutoff: int | None = None) -> Allocation:
        """Move money for one transfer: take it from `t.src`, then deposit it at `dst_node` (an account) or record
        it as having left the ledger (an external node)."""
        allocation = self.take(t, dst_node, cutoff)
        if external:
            self._record_exits(allocation, t)
        else:
            self.deposit(dst_node, allocation)
        return allocation

    def take(self, t: Transfer, dst_node: str, cutoff: int | None = None) -> Allocation:
        """Remove `t.amount` from the lots `t.src` holds, by policy; the pieces carry this hop in their path."""
        lots = self._holdings.get(t.src)
        if not lots:        # the common case: nothing traced here, all of it is of unknown origin
            self.counters.unknown_amount += t.amount
            return Allocation(t.event_id, t.src, dst_node, t.ts, t.amount, (), t.amount)
        if cutoff is not None:
            lots = self._drop_expired(t.src, lots, cutoff)
        taken: list[tuple[Lot, int]] = []
        remaining: list[Lot] = []
        if lots:
            later: list[Lot] = []
            if any(lot.arrived > t.ts for lot in lots):
                # A late transfer cannot carry money that arrived after it happened.
                later = [lot for lot in lots if lot.arrived > t.ts]
                lots = [lot for lot in lots if lot.arrived <= t.ts]
            taken, remaining = _ALLOCATORS[self.options.policy](lots, t.amount) if lots else ([], [])
            remaining = sorted(remaining + later, key=lambda lot: lot.arrived) if later else remaining
            if remaining:
                self._holdings[t.src] = remaining
            else:
                del self._holdings[t.src]
        traced = 0
        pieces = []
        for lot, amount in taken:
            traced += amount
            hop = Hop(txn_id=t.event_id, src=intern(t.src), dst=dst_node, ts=t.ts, amount=amount)
            pieces.append(Lot(origin=lot.origin, amount=amount, path=lot.path + (hop,), arrived=t.ts))
        unknown = t.amount - traced
        self.counters.unknown_amount += unknown
        return make_allocation(t, dst_node, tuple(pieces), unknown)

    def deposit(self, account: str, allocation: Allocation) -> None:
        """Hand the pieces of a transfer to the account receiving them (and start an inflow lot if configured)."""
        threshold = self.options.trace_inflows_above
        if not allocation.pieces and (threshold is None or allocation.unknown < threshold):
            return
        lots = [piece for piece in allocation.pieces if self._keep_path(piece)]
        if threshold is not None and allocation.unknown >= threshold:
            origin = Origin(id=allocation.txn_id, is_loan=False, event_id=allocation.txn_id, account=allocation.src,
                            ts=allocation.ts, amount=allocation.unknown)
            hop = Hop(txn_id=allocation.txn_id, src=allocation.src, dst=account, ts=allocation.ts,
                      amount=allocation.unknown)
            lots.append(Lot(origin=origin, amount=allocation.unknown, path=(hop,), arrived=allocation.ts))
        if lots:
            self._add_lots(account, lots)

    def _keep_path(self, piece: Lot) -> bool:
        if piece.hops > self.options.max_path_hops:
            self.counters.path_exhausted += 1
            return False
        return True

    def _record_exits(self, allocation: Allocation, t: Transfer) -> None:
        for loan_id, pieces in exits_by_loan(allocation).items():
            self.record_exits(loan_id, pieces, t)

    def record_exits(self, loan_id: str, pieces: Iterable[Lot], t: Transfer) -> None:
        """Pieces of one loan that left the ledger with `t`, counted against the loan's record (kept by the
        partition of the borrower, which the pieces are reported back to)."""
        record = self._loans.get(loan_id)
        if record is None:
            return
        cap = self.options.max_exits_per_loan
        for piece in pieces:
            if len(record.exits) >= cap:
                record.exits_dropped += 1
                continue
            # Interned: an exit outlives its event, and would otherwise keep the event's own copies of both.
            record.exits.append(Exit(piece=piece, channel=intern(t.channel),
                                     merchant_category=intern(mcc) if (mcc := t.merchant_category) else mcc))

    def _add_lots(self, account: str, new: Iterable[Lot]) -> None:
        lots = self._holdings.setdefault(account, [])
        options = self.options
        for lot in new:
            if lot.amount < options.min_lot_amount:
                for index in range(len(lots) - 1, -1, -1):
                    if lots[index].origin == lot.origin:
                        kept = lots[index]
                        lots[index] = Lot(kept.origin, kept.amount + lot.amount, kept.path, kept.arrived)
                        break
                else:
                    self.counters.dust_dropped += 1
                continue
            lots.append(lot)
            self._push(self._lot_expiry, lot.origin.ts, account)
            if len(lots) > options.max_lots_per_account:
                smallest = min(range(len(lots) - 1), key=lambda i: (lots[i].amount, lots[i].arrived, i))
                gone = lots.pop(smallest)
                self.counters.lots_evicted += 1
                self.counters.amount_evicted += gone.amount
        if not lots:
            del self._holdings[account]

    @staticmethod
    def _push(heap: list[tuple[int, str]], ts: int, key: str) -> None:
        heapq.heappush(heap, (ts, key))

    # -- expiry --------------------------------------------------------------------------------------------
    def expire(self, cutoff: int) -> None:
        """Forget lots and loans whose origin is older than `cutoff`. Cost: the entries that expire."""
        heap = self._lot_expiry
        while heap and heap[0][0] < cutoff:
            _, account = heapq.heappop(heap)
            lots = self._holdings.get(account)
            if lots:
                self._drop_expired(account, lots, cutoff)
        heap = self._loan_expiry
        while heap and heap[0][0] < cutoff:
            _, loan_id = heapq.heappop(heap)
            record = self._loans.get(loan_id)
            if record is not None and record.disbursement.ts < cutoff:
                del self._loans[loan_id]

    def _drop_expired(self, account: str, lots: list[Lot], cutoff: int) -> list[Lot]:
        kept = [lot for lot in lots if lot.origin.ts >= cutoff]
        if len(kept) != len(lots):
            self.counters.lots_expired += len(lots) - len(kept)
            if kept:
                self._holdings[account] = kept
            else:
                del self._holdings[account]
        return kept


def exits_by_loan(allocation: Allocation) -> dict[str, list[Lot]]:
    """The loan pieces of an allocation per loan id, in loan id order, pieces in allocation order."""
    by_loan: dict[str, list[Lot]] = {}
    for piece in allocation.pieces:
        if piece.origin.is_loan:
            by_loan.setdefault(piece.origin.id, []).append(piece)
    return dict(sorted(by_loan.items()))


# -- allocation policies: (lots, amount) -> ([(lot, amount taken)], lots left) ------------------------------------
def _lifo(lots: list[Lot], amount: int) -> tuple[list[tuple[Lot, int]], list[Lot]]:
    taken: list[tuple[Lot, int]] = []
    left = list(lots)
    while amount > 0 and left:
        lot = left[-1]
        if lot.amount <= amount:
            left.pop()
            taken.append((lot, lot.amount))
            amount -= lot.amount
        else:
            left[-1] = Lot(lot.origin, lot.amount - amount, lot.path, lot.arrived)
            taken.append((lot, amount))
            amount = 0
    return taken, left


def _fifo(lots: list[Lot], amount: int) -> tuple[list[tuple[Lot, int]], list[Lot]]:
    taken: list[tuple[Lot, int]] = []
    index = 0
    while amount > 0 and index < len(lots):
        lot = lots[index]
        if lot.amount <= amount:
            taken.append((lot, lot.amount))
            amount -= lot.amount
            index += 1
        else:
            taken.append((lot, amount))
            rest = Lot(lot.origin, lot.amount - amount, lot.path, lot.arrived)
            return taken, [rest, *lots[index + 1:]]
    return taken, lots[index:]


def _proportional(lots: list[Lot], amount: int) -> tuple[list[tuple[Lot, int]], list[Lot]]:
    total = sum(lot.amount for lot in lots)
    if amount >= total:
        return [(lot, lot.amount) for lot in lots], []
    shares = [lot.amount * amount // total for lot in lots]
    shortfall = amount - sum(shares)
    # Integer rounding leaves at most len(lots) - 1 minor units: give them to the lots in holding order.
    for index, lot in enumerate(lots):
        if shortfall == 0:
            break
        if shares[index] < lot.amount:
            shares[index] += 1
            shortfall -= 1
    taken = [(lot, share) for lot, share in zip(lots, shares) if share > 0]
    left = [Lot(lot.origin, lot.amount - share, lot.path, lot.arrived)
            for lot, share in zip(lots, shares) if lot.amount > share]
    return taken, left


_ALLOCATORS = {"lifo": _lifo, "fifo": _fifo, "proportional": _proportional}
