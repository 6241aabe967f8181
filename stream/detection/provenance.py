"""Provenance: what each account received, and what each of its senders had received before sending it.

Only transfers between accounts (p2p) are kept: an external node (a card, a merchant) passes nothing on, so no
chain runs through it. scatter_gather and cycle, the kinds that read provenance, therefore count transfers
between accounts only, whatever their `channels` list adds.

Kinds that look several transfers back (scatter_gather, cycle) cannot read other accounts' state once accounts
live in different partitions. So every transfer carries its sender's recent inflows as they were when it was
sent, and the receiver keeps them with the inflow. Following `before` from inflow to inflow walks the money's
history backwards, as each step's sender knew it at the time: the same answer whichever partitions own the
accounts, because nothing in it is read later from anyone else.

The inflows of an account are a persistent linked list, newest first: a transfer carries the sender's head as it
is, in O(1), and later inflows of the sender never change what an earlier transfer carried. Entries older than
the window are cut off per account a few times per window (in place, where `newest` says nothing further is in
the window), so an account's list holds about the window plus an eighth of it.
"""

from __future__ import annotations

import heapq
from array import array
from typing import TYPE_CHECKING, Iterator

import msgspec

if TYPE_CHECKING:
    from .graph import EdgeData


class Inflow(msgspec.Struct, gc=False):
    """One transfer as its receiver remembers it. `rest` is the receiver's earlier inflows (the list's tail).

    A C struct left out of the cyclic collector (gc=False), one per transfer between accounts in the window:
    smaller than a slots class by the collector's header, and never scanned by it. It cannot be part of a cycle:
    `before` and `rest` only ever point to inflows that existed before it (a snapshot's load rebuilds the same
    links)."""

    src: str
    key: str                     # the transfer's event id
    attrs: EdgeData              # the graph edge's data (ts, amount, channel...)
    before: "Inflow | None"      # the sender's inflows when it sent this
    sender_counterparties: int   # the sender's distinct counterparties then
    rest: "Inflow | None"
    # The latest event time of this inflow and all older ones (`rest`): arrival order is not time order (late
    # events), so a walk can stop only where nothing further down is recent enough, which this says in O(1).
    newest: int
    # attrs.ts, kept in the struct as well: the walks read it for every inflow they pass, and the struct is
    # already in the processor's cache when the edge data is not (one pointer hop less per inflow passed).
    ts: int

    def __reduce__(self):
        raise TypeError("an Inflow is pickled with its Provenance (its lists can be deeper than pickle recurses)")


def walk(head: Inflow | None, since: int, until: int, cap: int) -> Iterator[Inflow]:
    """Inflows with since <= ts <= until, newest first, from no more than `cap` distinct senders at or after
    `since`. Callers keep `since` inside the window: what is older is skipped, not counted, so whether an
    account's list was trimmed yet changes nothing."""
    seen: set[str] = set()
    while head is not None:
        if head.newest < since:
            return          # everything from here on is older than `since`: nothing more to yield or count
        ts = head.ts
        if ts >= since:
            src = head.src
            if src not in seen:
                if len(seen) >= cap:
                    return
                seen.add(src)
            if ts <= until:
                yield head
        head = head.rest


def _newest(ts: int, rest: Inflow | None) -> int:
    return ts if rest is None or rest.newest < ts else rest.newest


class Provenance:
    """The inflow lists of the accounts one partition owns."""

    def __init__(self, window_ms: int) -> None:
        self._heads: dict[str, Inflow] = {}
        self._trims: list[tuple[int, str]] = []     # (cutoff at which to trim next, account)
        self._slack = max(1, window_ms // 8)

    def inflows(self, account: str) -> Inflow | None:
        return self._heads.get(account)

    def add(self, account: str, src: str, key: str, attrs: EdgeData, before: Inflow | None,
            sender_counterparties: int) -> None:
        head = self._heads.get(account)
        ts = attrs.ts
        if head is None:
            heapq.heappush(self._trims, (ts + self._slack, account))
        self._heads[account] = Inflow(src, key, attrs, before, sender_counterparties, head, _newest(ts, head), ts)

    def expire(self, cutoff: int) -> None:
        """Cut each due account's list where everything further is older than `cutoff` (`newest` says where).

        In place, without copying what is kept: the cut-off entries are older than the window, and every walk
        skips what is older than its `since`, which callers keep inside the window, so no walk over this list, or
        over a sender's list an inflow carried as `before`, yields or counts anything different. Entries older than
        `cutoff` that arrived late, before newer ones, stay until everything that arrived before them is cut."""
        trims = self._trims
        while trims and trims[0][0] < cutoff:
            _, account = heapq.heappop(trims)
            head = self._heads.get(account)
            if head is None:
                continue
            if head.newest < cutoff:
                del self._heads[account]
                continue
            oldest = head.ts
            entry = head
            while entry.rest is not None and entry.rest.newest >= cutoff:
                entry = entry.rest
                ts = entry.ts
                if ts < oldest and ts >= cutoff:
                    oldest = ts
            entry.rest = None
            heapq.heappush(trims, (max(oldest, cutoff) + self._slack, account))

    def __len__(self) -> int:
        return len(self._heads)

    # Pickled as flat columns (snapshots): the lists are linked, often thousands deep, and share their tails,
    # while pickle recurses once per link. Links become indexes in two int arrays, which pickle as raw bytes.
    def __getstate__(self) -> dict:
        index: dict[int, int] = {}
        order: list[Inflow] = []
        pending = list(self._heads.values())
        while pending:                       # every reachable entry once, without recursion
            entry = pending.pop()
            if id(entry) in index:
                continue
            index[id(entry)] = len(order)
            order.append(entry)
            if entry.rest is not None:
                pending.append(entry.rest)
            if entry.before is not None:
                pending.append(entry.before)
        return {
            "src": [entry.src for entry in order], "key": [entry.key for entry in order],
            "attrs": [entry.attrs for entry in order],
            "counterparties": array("q", [entry.sender_counterparties for entry in order]),
            "newest": array("q", [entry.newest for entry in order]),
            "before": array("q", [-1 if entry.before is None else index[id(entry.before)] for entry in order]),
            "rest": array("q", [-1 if entry.rest is None else index[id(entry.rest)] for entry in order]),
            "heads": {account: index[id(head)] for account, head in self._heads.items()},
            "trims": self._trims, "slack": self._slack,
        }

    def __setstate__(self, state: dict) -> None:
        entries = [Inflow(src, key, attrs, None, counterparties, None, newest, attrs.ts)
                   for src, key, attrs, counterparties, newest
                   in zip(state["src"], state["key"], state["attrs"], state["counterparties"], state["newest"])]
        for entry, before, rest in zip(entries, state["before"], state["rest"]):
            if before >= 0:
                entry.before = entries[before]
            if rest >= 0:
                entry.rest = entries[rest]
        self._heads = {account: entries[at] for account, at in state["heads"].items()}
        self._trims = state["trims"]
        self._slack = state["slack"]
