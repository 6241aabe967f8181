"""Identity links in the window: which devices, IPs and other identifiers each account used, the loans requested
from an identifier their borrower had not used before, and where loan money of borrowers arrives together.

Three indexes, each kept at the partition of its own key (docs/architecture.md, invariant 7):

- per **account**: the identifiers it used (as the sender of a transfer or the borrower of a loan) with the last
  time it used each, and how long it has been seen. A loan is then judged against the account's own history:
  `device_is_new`, `ip_is_new`, `account_age`. Bounded: at most `IDENTIFIERS_PER_ACCOUNT` identifiers, the
  least recently used one leaves first.
- per **loan from a new identifier** (a `LoanWatch`, at the borrower): what left the borrower's account from
  that loan, transfer by transfer. That is what `account_takeover` reads: a thief borrows on a device the owner
  never used and moves the money out at once.
- per **node** money lands on (an account, an external sink, or an identifier key when loan money left the
  ledger): the loan money that arrived there with the identifiers its loan was requested from (`Arrival`).
  That is what `identity_ring` reads: borrowers linked by shared identifiers whose loans converge on one
  collector, or leave the ledger.

Identifier keys are `device:<id>`, `ip:<address>` and `<field>:<value>` for each extra input field named in the
`identity_fields` setting (a phone hash, a card BIN, a registration batch...). Everything expires with the
window, by the shared event clock, so what a kind reads depends only on the event log.
"""

from __future__ import annotations

import heapq
from sys import intern
from operator import attrgetter
from typing import Iterable

import msgspec

from ..model.events import Disbursement, Event
from .tracer import Origin
from .windowed import WindowedLists

IDENTIFIERS_PER_ACCOUNT = 16     # an account with more devices and IPs than this is judged on its recent ones
OUTFLOWS_PER_WATCH = 32          # transfers remembered per watched loan: a takeover moves money in a few
ARRIVALS_PER_NODE = 1000         # loan pieces remembered per node, as SearchLimits.device_cap for devices


def identity_keys(event: Event, fields: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The identifiers an event was made from, as keys: its device, its IP, then the configured extra fields (a
    text or integer value of at most 256 characters; anything else identifies nothing)."""
    # Interned: an account's record and every arrival of its loans' money then share one string per identifier
    # (78 bytes per windowed edge at 1M edges, for about 1 µs per key).
    keys = []
    if event.device_id:
        keys.append(intern(f"device:{event.device_id}"))
    if event.ip:
        keys.append(intern(f"ip:{event.ip}"))
    if fields:
        extra = event.extra
        for name in fields:
            value = extra.get(name)
            if isinstance(value, bool) or not isinstance(value, (str, int)):
                continue
            text = str(value)
            if text and len(text) <= 256:
                keys.append(intern(f"{name}:{text}"))
    return tuple(keys)


# The records below are msgspec structs outside the cyclic collector (none can be part of a cycle): smaller
# than slots dataclasses by the collector's header, and a snapshot loads each with one constructor call (the
# identity links took 1.8 s of a 300,000-event snapshot's 4.0 s to load as dataclasses, 0.4 s as structs).
class AccountSeen(msgspec.Struct, gc=False):
    """One per account in the window, so kept small: the identifiers as one flat tuple, replaced when it changes,
    not a dict per account (for the two identifiers most accounts have: 72 bytes against 184)."""

    first_seen: int                 # earliest activity still known; the window's start once older activity left
    last_seen: int
    used: tuple                     # (key, last time the account used it, key, time, ...)

    def keys_since(self, cutoff: int | None) -> dict[str, int]:
        used = self.used
        return {used[i]: used[i + 1] for i in range(0, len(used), 2) if cutoff is None or used[i + 1] >= cutoff}


class Outflow(msgspec.Struct, frozen=True, gc=False):
    ts: int
    txn_id: str
    dst: str
    channel: str
    merchant_category: str | None
    amount: int                     # of the watched loan's money


class LoanWatch(msgspec.Struct, gc=False):
    """A loan whose borrower had not used its device or its IP in the window (or had no history at all)."""

    disbursement: Disbursement
    device_is_new: bool
    ip_is_new: bool
    account_age: int                # ms the borrower had been seen before the loan (0: never)
    known_devices: int              # devices and IPs the account had used in the window
    known_ips: int
    outflows: list[Outflow] = msgspec.field(default_factory=list)


class Arrival(msgspec.Struct, frozen=True, gc=False):
    """Loan money that reached a node: how much, from which loan and borrower. One per loan piece that arrives,
    so it refers to the loan's `Origin` (shared by every piece of the loan) rather than copying the loan's
    fields, and its identifiers are worked out again when a ring is checked (`Identities.identifiers_of`),
    which is rare, instead of being kept per arrival: 72 bytes against 112 and a tuple."""

    ts: int
    txn_id: str
    origin: Origin
    amount: int
    hops: int
    channel: str
    merchant_category: str | None

    @property
    def loan_id(self) -> str:
        return self.origin.id

    @property
    def loan_event_id(self) -> str:
        return self.origin.event_id

    @property
    def loan_ts(self) -> int:
        return self.origin.ts

    @property
    def loan_amount(self) -> int:
        return self.origin.amount

    @property
    def borrower(self) -> str:
        return self.origin.account


class Identities:
    """The three indexes of one partition (see the module docstring)."""

    def __init__(self, fields: tuple[str, ...] = ()) -> None:
        self.fields = fields
        self.accounts: dict[str, AccountSeen] = {}
        self._account_expiry: list[tuple[int, str]] = []      # (time, account): no tie-breaker needed
        self.watches: dict[str, LoanWatch] = {}
        self._watch_expiry: list[tuple[int, str]] = []
        self.arrivals: WindowedLists[Arrival] = WindowedLists(ARRIVALS_PER_NODE, attrgetter("origin.ts"))
        self._cutoff: int | None = None

    # -- accounts ------------------------------------------------------------------------------------------
    def saw(self, account: str, keys: tuple[str, ...], ts: int) -> None:
        """`account` acted at `ts` from these identifiers."""
        seen = self.accounts.get(account)
        if seen is None:
            account = intern(account)            # the graph's node name: one string object for both
            seen = self.accounts[account] = AccountSeen(ts, ts, ())
            heapq.heappush(self._account_expiry, (ts, account))
        else:
            if ts < seen.first_seen:
                seen.first_seen = ts
            if ts > seen.last_seen:
                seen.last_seen = ts
        used = seen.used
        changed: list | None = None
        for key in keys:
            if key in used:             # keys sit at even places, times (ints) at odd ones
                i = used.index(key)
                if used[i + 1] < ts:
                    if changed is None:
                        changed = list(used)
                    changed[i + 1] = ts
            else:
                if changed is None:
                    changed = list(used)
                changed += (key, ts)
        if changed is None:
            return
        if len(changed) > 2 * IDENTIFIERS_PER_ACCOUNT:     # the least recently used leave first
            kept = sorted(zip(changed[::2], changed[1::2]), key=lambda item: (item[1], item[0]))
            kept = kept[-IDENTIFIERS_PER_ACCOUNT:]
            kept.sort(key=lambda item: changed.index(item[0]))     # in the order they were first used
            changed = [value for pair in kept for value in pair]
        seen.used = tuple(changed)

    def used(self, account: str) -> dict[str, int]:
        """The identifiers `account` used in the window, with the last time of each."""
        seen = self.accounts.get(account)
        if seen is None:
            return {}
        return seen.keys_since(self._cutoff)

    def borrowed(self, d: Disbursement, keys: tuple[str, ...]) -> LoanWatch | None:
        """Judge a loan against its borrower's history, before the loan itself joins it: watched when its device
        or IP is one the account had not used in the window."""
        known = self.used(d.account)
        seen = self.accounts.get(d.account)
        device_is_new = bool(d.device_id) and f"device:{d.device_id}" not in known
        ip_is_new = bool(d.ip) and f"ip:{d.ip}" not in known
        watch = None
        if device_is_new or ip_is_new:
            age = max(0, d.ts - seen.first_seen) if seen is not None and known else 0
            watch = LoanWatch(d, device_is_new, ip_is_new, age,
                              known_devices=sum(1 for key in known if key.startswith("device:")),
                              known_ips=sum(1 for key in known if key.startswith("ip:")))
            self.watches[d.loan_id] = watch
            heapq.heappush(self._watch_expiry, (d.ts, d.loan_id))
        self.saw(d.account, keys, d.ts)
        return watch

    def left(self, transfer, pieces: Iterable) -> None:
        """Pieces of watched loans that left their borrower's account with `transfer` (first hop only)."""
        watches = self.watches
        if not watches:
            return
        for piece in pieces:
            origin = piece.origin
            if piece.hops != 1 or not origin.is_loan or origin.account != transfer.src:
                continue
            watch = watches.get(origin.id)
            if watch is not None and len(watch.outflows) < OUTFLOWS_PER_WATCH:
                watch.outflows.append(Outflow(transfer.ts, transfer.event_id, transfer.dst, transfer.channel,
                                              transfer.merchant_category, piece.amount))

    # -- arrivals ------------------------------------------------------------------------------------------
    def arrive(self, node: str, transfer, pieces: Iterable) -> tuple[Arrival, ...]:
        """Record the loan pieces `transfer` brought to `node`; returns them (what the kinds of this step see)."""
        fields = self.fields
        made = []
        for piece in pieces:
            origin = piece.origin
            loan = origin.disbursement
            if not origin.is_loan or loan is None:
                continue
            if not identity_keys(loan, fields):
                continue            # requested from nothing that identifies: it links no one
            made.append(Arrival(transfer.ts, transfer.event_id, origin, piece.amount, piece.hops,
                                transfer.channel, transfer.merchant_category))
        for arrival in made:
            self.arrivals.add(node, arrival)
        return tuple(made)

    def identifiers_of(self, arrival: Arrival) -> tuple[str, ...]:
        """The identifiers the arrival's loan was requested from."""
        return identity_keys(arrival.origin.disbursement, self.fields)

    def arrival_count(self, node: str) -> int:
        """An upper bound of `len(arrivals_at(node))`, in O(1): what a prefilter may read."""
        return self.arrivals.count(node)

    def arrivals_at(self, node: str) -> tuple[Arrival, ...]:
        cutoff = self._cutoff
        return tuple(a for a in self.arrivals.items(node) if cutoff is None or a.loan_ts >= cutoff)

    # -- the window ----------------------------------------------------------------------------------------
    def expire(self, cutoff: int) -> None:
        self._cutoff = cutoff
        heap = self._account_expiry
        while heap and heap[0][0] < cutoff:
            _, account = heapq.heappop(heap)
            seen = self.accounts.get(account)
            if seen is None:
                continue
            if seen.last_seen < cutoff:
                del self.accounts[account]
                continue
            # Still active: older activity is forgotten, so it has been seen at least since the window began.
            seen.first_seen = max(seen.first_seen, cutoff)
            seen.used = tuple(value for key, ts in zip(seen.used[::2], seen.used[1::2]) if ts >= cutoff
                              for value in (key, ts))
            heapq.heappush(heap, (seen.last_seen, account))
        watches = self._watch_expiry
        while watches and watches[0][0] < cutoff:
            _, loan_id = heapq.heappop(watches)
            watch = self.watches.get(loan_id)
            if watch is not None and watch.disbursement.ts < cutoff:
                del self.watches[loan_id]
        self.arrivals.expire(cutoff)

    def __len__(self) -> int:
        return len(self.accounts)
