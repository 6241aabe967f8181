"""The rolling transaction graph: the last `window` of event time as a NetworkX multi-digraph.

Nodes are ledger accounts (by their own id) and external sinks: a `withdrawal` lands on the card node
`card:<dst>`, a `merchant` payment on the merchant node `merchant:<dst>` (carrying its MCC as `mcc`), any other
non-p2p channel on `<channel>:<dst>`. Prefixes keep an external party from ever colliding with an account id.
Edges are transfers, keyed by event id; each edge's data is an `EdgeData` struct rather than NetworkX's usual
attribute dict: `ts` (epoch ms), `amount` (minor units) and `channel`, and `loan` (minor units traced to
disbursements) and `loans` (their ids), which the detector sets on the few edges that carry loan money. Disbursements are recorded on the borrower's node (`disb`: list of
(ts, loan_id, amount, event_id)).

Event time only: the watermark is the largest event time seen minus the allowed lateness. An event older than
the watermark is late but still recorded when it falls inside the window; one older than the window is counted
and ignored. Edges leave when they fall out of the window, incrementally: in-order arrivals sit in a deque,
late ones in a heap, and each advance of the watermark pops only what expires. A node left with no edge and no
disbursement in the window is dropped.
"""

from __future__ import annotations

import heapq
from bisect import bisect_left, bisect_right, insort
from collections import deque
from dataclasses import dataclass
from sys import intern
from typing import Iterator, Mapping

import msgspec
import networkx as nx

from ..model.events import Disbursement, Event, Transfer
from ..model.defaults import ALLOWED_LATENESS_MS as DEFAULT_LATENESS_MS
from ..model.defaults import WINDOW_MS as DEFAULT_WINDOW_MS

# Outcomes of `RollingGraph.add`.
ACCEPTED = "accepted"
LATE = "late"            # older than the watermark, inside the window: recorded
TOO_OLD = "too_old"      # older than the window: ignored
DUPLICATE = "duplicate"  # same event id already in the window: ignored (at-least-once delivery)


_CHANNELS: dict[str, str] = {}


class EdgeData(msgspec.Struct, gc=False):
    """One edge's data, where NetworkX keeps an attribute dict: 56 bytes against a dict's 184, for every edge
    in the window, and read as attributes (`attrs.ts`) rather than by key. Outside the cyclic collector: it
    holds numbers, strings and a tuple of strings only. Only fundflow's own queries read the graph (no NetworkX
    algorithm reads edge data as a dict)."""

    ts: int
    amount: int
    channel: str
    loan: int = 0                       # minor units traced to disbursements (set by the detector)
    loans: tuple[str, ...] = ()         # their loan ids


_NO_EDGES: Mapping[str, dict] = {}


def sink_node(transfer: Transfer) -> str:
    """The node a transfer lands on: the account itself for p2p, a prefixed external node otherwise."""
    channel = transfer.channel
    if channel == "p2p":
        return transfer.dst
    prefix = "card:" if channel == "withdrawal" else f"{channel}:"
    # Ledgers that already name external parties this way (card:6206...) keep their names.
    return transfer.dst if transfer.dst.startswith(prefix) else prefix + transfer.dst


def is_external(node: str, graph: nx.MultiDiGraph) -> bool:
    data = graph.nodes.get(node)
    return bool(data and data.get("ext"))


@dataclass(frozen=True, slots=True)
class GraphStats:
    events: int
    late: int
    too_old: int
    duplicates: int
    nodes: int
    edges: int
    evicted_edges: int


class EventClock:
    """Event time as the whole detector sees it: the newest event time, the watermark and the window's start.

    One per detector, shared by the graph of every partition, so that all partitions refuse and evict by the
    same time whatever the partition count (docs/architecture.md, invariant 7)."""

    def __init__(self, window_ms: int = DEFAULT_WINDOW_MS, lateness_ms: int = DEFAULT_LATENESS_MS) -> None:
        if window_ms <= 0:
            raise ValueError(f"window must be a positive duration in ms, got {window_ms!r}")
        if lateness_ms < 0 or lateness_ms >= window_ms:
            raise ValueError(f"allowed lateness must be >= 0 and shorter than the window ({window_ms} ms), "
                             f"got {lateness_ms!r}")
        self.window_ms = window_ms
        self.lateness_ms = lateness_ms
        self.max_ts: int | None = None
        # Kept up to date by `advance` rather than computed on each read: every message of every event reads
        # the cutoff (a partition catching up) and every event the watermark.
        self.watermark: int | None = None
        self.cutoff: int | None = None          # event times below this are outside the window

    def classify(self, ts: int) -> str:
        """ACCEPTED, LATE or TOO_OLD for an event at `ts`, against the current watermark (before it advances)."""
        watermark = self.watermark
        if watermark is None:
            return ACCEPTED
        if ts < self.cutoff:
            return TOO_OLD
        if ts < watermark:
            return LATE
        return ACCEPTED

    def advance(self, ts: int) -> bool:
        """Take an accepted event's time; True when the window moved."""
        if self.max_ts is None or ts > self.max_ts:
            self.max_ts = ts
            self.watermark = ts - self.lateness_ms
            self.cutoff = self.watermark - self.window_ms
            return True
        return False


class RollingGraph:
    """The windowed graph of one partition (or of everything, with one partition). Not thread-safe.

    With several partitions a transfer is recorded twice: by the partition of its sender (`insert_transfer`)
    and by the partition of its receiver (`receive_transfer`, with the same `EdgeData`); a partition that
    owns both records it once. Each partition reads only the adjacency of the accounts it owns."""

    def __init__(self, window_ms: int = DEFAULT_WINDOW_MS, lateness_ms: int = DEFAULT_LATENESS_MS,
                 clock: EventClock | None = None) -> None:
        self.clock = clock if clock is not None else EventClock(window_ms, lateness_ms)
        self.g = nx.MultiDiGraph()
        # Expiry queues. In-order arrivals: a flat deque of ts, src_node, dst_node_or_None, key, four slots per
        # entry (no tuple per edge: 48 bytes saved each). Late ones: a heap of (ts, seq, src, dst, key).
        # dst None marks a disbursement record on src_node.
        self._in_order: deque[int | str | None] = deque()
        self._late: list[tuple[int, int, str, str | None, str]] = []
        self._seq = 0
        # Beside NetworkX, per node asked about: the event times of its edges out and in, sorted, made from the
        # adjacency at the first question and kept up to date from then on. The kinds ask "at least n distinct
        # counterparts in this range?" of hubs on most transfers; the number of edges in the range, two
        # bisections, bounds the answer, and it is nearly always short of n (98.6% of the questions on AMLSim),
        # so the adjacency is walked only when it could be enough. Only nodes asked about hold a list: the
        # accounts that pass the kinds' degree prefilters.
        self._out_times: dict[str, list[int]] = {}
        self._in_times: dict[str, list[int]] = {}
        self.events = 0
        self.late = 0
        self.too_old = 0
        self.duplicates = 0
        self.evicted_edges = 0
        self._live_edges = 0

    # -- time ----------------------------------------------------------------------------------------------
    @property
    def window_ms(self) -> int:
        return self.clock.window_ms

    @property
    def lateness_ms(self) -> int:
        return self.clock.lateness_ms

    @property
    def max_ts(self) -> int | None:
        return self.clock.max_ts

    @property
    def watermark(self) -> int | None:
        return self.clock.watermark

    @property
    def cutoff(self) -> int | None:
        return self.clock.cutoff

    def classify(self, ts: int) -> str:
        return self.clock.classify(ts)

    # -- updates -------------------------------------------------------------------------------------------
    def add(self, event: Event) -> str:
        """Record an event in a graph of its own (one partition, its own clock); returns ACCEPTED, LATE, TOO_OLD
        or DUPLICATE. Advances the watermark and evicts."""
        self.events += 1
        ts = event.ts
        verdict = self.classify(ts)
        if verdict == TOO_OLD:
            self.too_old += 1
            return TOO_OLD
        recorded = (self.insert_transfer(event) is not None if isinstance(event, Transfer)
                    else self.insert_disbursement(event))
        if not recorded:
            self.duplicates += 1
            return DUPLICATE
        if verdict == LATE:
            self.late += 1
        if self.clock.advance(ts):
            self.evict()
        return verdict

    def holds(self, event: Event) -> bool:
        """True if this event id is already recorded (at-least-once delivery), read from the partition that
        owns the event's first account."""
        if type(event) is Transfer:
            keydict = self.g._succ.get(event.src, _NO_EDGES).get(
                event.dst if event.channel == "p2p" else sink_node(event))
            return keydict is not None and event.event_id in keydict
        node = self.g._node.get(event.account)
        return bool(node) and any(record[3] == event.event_id for record in node.get("disb", ()))

    def _schedule(self, ts: int, src: str, dst: str | None, key: str) -> None:
        in_order = self._in_order
        if not in_order or ts >= in_order[-4]:
            in_order.extend((ts, src, dst, key))
        else:
            self._seq += 1      # the heap needs a tie-breaker; in-order entries do not (saves memory per edge)
            heapq.heappush(self._late, (ts, self._seq, src, dst, key))

    def insert_transfer(self, t: Transfer, attrs: EdgeData | None = None, dst: str | None = None
                        ) -> EdgeData | None:
        """Insert the edge straight into NetworkX's adjacency dicts (what `add_edge` does, without its per-call
        overhead); returns its data, or None if this event id is already there. `attrs`: the data the
        sender's partition made (a receiving partition shares it rather than copying); `dst`: `sink_node(t)`,
        already interned, when the caller has it."""
        g = self.g
        succ, pred, nodes = g._succ, g._pred, g._node
        # Interned: every edge and expiry slot of a node then shares one string object, instead of keeping the
        # copy each parsed event brought (about 100 bytes per windowed edge).
        src, dst, channel = intern(t.src), dst if dst is not None else intern(sink_node(t)), t.channel
        succ_src = succ.get(src)
        if succ_src is None:
            succ_src = succ[src] = {}
            pred[src] = {}
            nodes[src] = {}
        keydict = succ_src.get(dst)
        if keydict is not None and t.event_id in keydict:
            return None
        node_attrs = nodes.get(dst)
        if node_attrs is None:
            node_attrs = nodes[dst] = {} if channel == "p2p" else {"ext": True}
            succ[dst] = {}
            pred[dst] = {}
        if channel == "merchant" and t.merchant_category is not None:
            node_attrs["mcc"] = t.merchant_category
        if keydict is None:
            keydict = succ_src[dst] = pred[dst][src] = {}
        if attrs is None:
            channel = _CHANNELS.setdefault(channel, channel)   # one string object per channel name, not per edge
            attrs = EdgeData(t.ts, t.amount, channel)
        key, ts = t.event_id, t.ts
        keydict[key] = attrs
        self._live_edges += 1
        times = self._out_times.get(src)
        if times is not None:
            _add_time(times, ts)
        times = self._in_times.get(dst)
        if times is not None:
            _add_time(times, ts)
        in_order = self._in_order
        if in_order and ts < in_order[-4]:
            self._schedule(ts, src, dst, key)
        else:                                        # `_schedule`'s in-order case, the usual one, inline
            in_order.extend((ts, src, dst, key))
        return attrs

    def receive_transfer(self, t: Transfer, attrs: EdgeData, dst: str | None = None) -> None:
        """The receiving partition's copy of a transfer its sender's partition recorded (a no-op when the same
        partition owns both ends)."""
        self.insert_transfer(t, attrs, dst)

    def insert_disbursement(self, d: Disbursement) -> bool:
        g = self.g
        if d.account not in g._node:
            g.add_node(d.account)
        records = g._node[d.account].setdefault("disb", [])
        if any(record[3] == d.event_id for record in records):
            return False
        records.append((d.ts, d.loan_id, d.amount, d.event_id))
        self._schedule(d.ts, d.account, None, d.event_id)
        return True

    def evict(self) -> int:
        """Drop everything older than the window; returns how many edges left. Cost: what expires, no more."""
        cutoff = self.cutoff
        if cutoff is None:
            return 0
        removed = 0
        in_order = self._in_order
        pop = in_order.popleft
        while in_order and in_order[0] < cutoff:
            ts = pop()
            src, dst, key = pop(), pop(), pop()
            removed += self._expire(ts, src, dst, key)
        late = self._late
        while late and late[0][0] < cutoff:
            ts, _, src, dst, key = heapq.heappop(late)
            removed += self._expire(ts, src, dst, key)
        self.evicted_edges += removed
        return removed

    def _expire(self, ts: int, src: str, dst: str | None, key: str) -> int:
        g = self.g
        if dst is None:
            node = g._node.get(src)
            if node is not None:
                records = node.get("disb")
                if records:
                    node["disb"] = [rec for rec in records if rec[3] != key]
                    if not node["disb"]:
                        del node["disb"]
                self._drop_if_isolated(src)
            return 0
        try:
            g.remove_edge(src, dst, key)
        except nx.NetworkXError:
            return 0
        self._live_edges -= 1
        _drop_time(self._out_times, src, ts)
        _drop_time(self._in_times, dst, ts)
        self._drop_if_isolated(src)
        self._drop_if_isolated(dst)
        return 1

    def _drop_if_isolated(self, node: str) -> None:
        g = self.g
        attrs = g._node.get(node)
        if attrs is not None and not g._succ[node] and not g._pred[node] and not attrs.get("disb"):
            g.remove_node(node)

    # -- reads (bounded by the caller's caps) ---------------------------------------------------------------
    # Kinds read the graph only through these queries, never NetworkX's adjacency dicts: one place knows the
    # layout, and a partitioned state can answer the same questions from what it holds.
    def sender_count(self, node: str) -> int:
        """Distinct accounts that sent to `node` within the window."""
        return len(self.g._pred.get(node, ()))

    def receiver_count(self, node: str) -> int:
        """Distinct nodes `node` sent to within the window."""
        return len(self.g._succ.get(node, ()))

    def counterparty_count(self, node: str) -> int:
        """Distinct senders plus distinct receivers of `node` within the window."""
        g = self.g
        return len(g._pred.get(node, ())) + len(g._succ.get(node, ()))

    def degrees(self, node: str) -> tuple[int, int]:
        """(distinct senders, distinct receivers) of `node` within the window: what the kinds' prefilters read
        first, in one call."""
        g = self.g
        return len(g._pred.get(node, ())), len(g._succ.get(node, ()))

    def edges_between(self, src: str, dst: str) -> Mapping[str, dict]:
        """The transfers from `src` to `dst` within the window, by transaction id (empty when none)."""
        return self.g._succ.get(src, {}).get(dst, _NO_EDGES)

    def in_edges(self, node: str, since: int, until: int, cap: int) -> Iterator[tuple[str, str, dict]]:
        """(src, key, attrs) of edges into `node` with since <= ts <= until, newest neighbours first, looking at
        no more than `cap` neighbours."""
        return self._edges(self.g._pred.get(node), since, until, cap)

    def out_edges(self, node: str, since: int, until: int, cap: int) -> Iterator[tuple[str, str, dict]]:
        """(dst, key, attrs) of edges out of `node` with since <= ts <= until; see `in_edges`."""
        return self._edges(self.g._succ.get(node), since, until, cap)

    def has_senders(self, node: str, since: int, until: int, cap: int, channels: frozenset[str],
                    min_amount: int, require_loan: bool, enough: int) -> bool:
        """Whether `in_edges(node, since, until, cap)` yields edges from at least `enough` distinct senders that
        pass the kinds' common filter (`edge_qualifies` with no loan share). The question a kind asks before it
        builds and sorts the edges themselves: most of the time the answer is no."""
        return (_times_between(self._times(self._in_times, self.g._pred, node), since, until) >= enough
                and self._count(self.g._pred.get(node), since, until, cap, channels, min_amount, require_loan,
                                enough) >= enough)

    def has_receivers(self, node: str, since: int, until: int, cap: int, channels: frozenset[str],
                      min_amount: int, require_loan: bool, enough: int) -> bool:
        """`has_senders` for the edges out of `node`."""
        return (_times_between(self._times(self._out_times, self.g._succ, node), since, until) >= enough
                and self._count(self.g._succ.get(node), since, until, cap, channels, min_amount, require_loan,
                                enough) >= enough)

    @staticmethod
    def _times(times_by_node: dict[str, list[int]], adjacency: dict, node: str) -> list[int]:
        times = times_by_node.get(node)
        if times is None:
            edges = adjacency.get(node)
            if not edges:
                return []
            times = times_by_node[node] = sorted(attrs.ts for keydict in edges.values()
                                                 for attrs in keydict.values())
        return times

    @staticmethod
    def _count(adjacency: dict | None, since: int, until: int, cap: int, channels: frozenset[str], min_amount: int,
               require_loan: bool, enough: int) -> int:
        """Distinct neighbours with a qualifying edge in the range, counted up to `enough`."""
        if not adjacency:
            return 0
        found = seen = 0
        for other in reversed(adjacency):
            seen += 1
            if seen > cap:
                break
            for attrs in adjacency[other].values():
                if (since <= attrs.ts <= until and attrs.channel in channels and attrs.amount >= min_amount
                        and (not require_loan or attrs.loan > 0)):
                    found += 1
                    if found >= enough:
                        return found
                    break
        return found

    @staticmethod
    def _edges(adjacency: dict | None, since: int, until: int, cap: int) -> Iterator[tuple[str, str, dict]]:
        if not adjacency:
            return
        seen = 0
        for other in reversed(adjacency):
            seen += 1
            if seen > cap:
                return
            for key, attrs in adjacency[other].items():
                if since <= attrs.ts <= until:
                    yield other, key, attrs

    def disbursements(self, account: str) -> list[tuple[int, str, int, str]]:
        node = self.g._node.get(account)
        return list(node.get("disb", ())) if node else []

    @property
    def node_count(self) -> int:
        return len(self.g._node)

    @property
    def edge_count(self) -> int:
        return self._live_edges

    def stats(self) -> GraphStats:
        return GraphStats(events=self.events, late=self.late, too_old=self.too_old, duplicates=self.duplicates,
                          nodes=len(self.g._node), edges=self._live_edges,
                          evicted_edges=self.evicted_edges)


def _add_time(times: list[int], ts: int) -> None:
    if not times or ts >= times[-1]:
        times.append(ts)
    else:
        insort(times, ts)            # a late edge


def _drop_time(times_by_node: dict[str, list[int]], node: str, ts: int) -> None:
    times = times_by_node.get(node)
    if times is None:
        return
    if len(times) == 1:
        del times_by_node[node]
    else:
        del times[bisect_left(times, ts)]      # expiry runs in event-time order: nearly always the first


def _times_between(times: list[int] | None, since: int, until: int) -> int:
    """How many of the sorted `times` lie in [since, until]."""
    if not times:
        return 0
    return bisect_right(times, until) - bisect_left(times, since)
