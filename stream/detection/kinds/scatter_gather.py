"""scatter_gather: money leaves one account A to several intermediaries, each of which passes it on to the same
account C (A -> many -> C), within a window.

Why it matters: splitting a sum across mules and regrouping it hides the direct A -> C link that a single
transfer would show.

Runs at C, from provenance: C's inflows, and for each what its sender had received before paying C. A leg
A -> M counts when M had received it by the time M paid C (a leg booked after the gather it funds is not seen).

Every gather into C asks the same question of C's inflows over `within`, so each partition keeps, per collector,
the legs of the gathers it has already looked at, by origin (`LegIndex`): the next gather adds only the inflows
that arrived since and reads the legs of its own origins, instead of walking every intermediary's inflows again.
The index gives the walk's answer exactly, or says that it cannot (a walk its caps would cut), and then the
walk is done.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...model.events import Transfer
from ...model.money import format_minor
from ..finding import Finding
from ..graph import sink_node
from ..provenance import walk
from ._common import (Param, channels_param, count, edge_qualifies, event_qualifies, format_elapsed, hours,
                      loans_of, min_amount_param, min_total_param, require_loan_money_param, within_param,
                      count_strength, evidence_score, quickness)

if TYPE_CHECKING:
    from ...model.events import Event
    from ..provenance import Inflow
    from ...rules.model import Rule
    from ..state import DetectionState

NAME = "scatter_gather"
TRIGGERS = frozenset({"transfer"})
STAGES = ("received",)

PARAMS = (
    Param("min_intermediaries", count(2), 3, "Fewest distinct intermediaries between A and C.", looser="lower"),
    within_param(hours(24), "From the first scatter transfer to the last gather transfer."),
    channels_param(frozenset({"p2p"}), "Transfer channels that count (default p2p)."),
    min_amount_param("Ignore single transfers smaller than this (units)."),
    min_total_param("Fewest units the gather transfers into C must add up to."),
    require_loan_money_param(False, "Count only gather transfers carrying money traced to a disbursement."),
)


def channels(rule: "Rule") -> frozenset[str]:
    return rule.params["channels"]


def prefilter(rule: "Rule", stage: str):
    """The exits of `detect` before its walk: the gather transfer qualifies, carried its sender's inflows, and
    the collector has at least `min_intermediaries` senders in the whole window."""
    params = rule.params
    min_amount, require_loan, minimum = params["min_amount"], params["require_loan_money"], params["min_intermediaries"]

    def test(event: Transfer, state: "DetectionState") -> bool:
        if event.amount < min_amount or state.before is None:
            return False
        if require_loan:
            allocation = state.allocation
            if allocation is None or allocation.loan_amount <= 0:
                return False
        return state.graph.degrees(sink_node(event))[0] >= minimum
    return test


def _gatherers(state: "DetectionState", collector: str, since: int, until: int, channels: frozenset[str],
               min_amount: int, require_loan: bool, enough: int) -> int:
    """Distinct intermediaries whose gather transfers into the collector the search below would look at, counted
    up to `enough` before it walks what each of them had received: each origin's intermediaries are among them."""
    mids: set[str] = set()
    for gather in walk(state.provenance.inflows(collector), since, until, state.limits.degree_cap):
        if gather.src != collector and gather.src not in mids and edge_qualifies(gather.attrs, channels, min_amount,
                                                                                  require_loan, 0.0):
            mids.add(gather.src)
            if len(mids) >= enough:
                break
    return len(mids)


def _legs(head: "Inflow | None", collector: str, since: int, until: int, limits, min_amount: int,
          require_loan: bool, wanted: set[str]) -> dict[str, dict[str, tuple]]:
    """origin -> intermediary -> (gather ts, gather key, leg ts, leg key, leg attrs, gather attrs, intermediary):
    per intermediary its earliest gather into the collector, and of what it had received from the origin by then,
    the earliest leg. The gathers are `walk(head, since, until, degree_cap)` written out, each gather's legs
    `_walk_legs`. What `LegIndex` answers without walking, when it can."""
    found: dict[str, dict[str, tuple]] = {}
    degree_cap, branch_cap = limits.degree_cap, limits.branch_cap
    senders = set()
    gather = head
    while gather is not None and gather.newest >= since:
        gather_ts = gather.ts
        if gather_ts < since:
            gather = gather.rest
            continue
        mid = gather.src
        if mid not in senders:
            if len(senders) >= degree_cap:
                break
            senders.add(mid)
        if gather_ts <= until and _gathers(gather, collector, min_amount, require_loan):
            _walk_legs(gather, since, wanted, found, branch_cap, min_amount)
        gather = gather.rest
    return found


def _gathers(gather: "Inflow", collector: str, min_amount: int, require_loan: bool) -> bool:
    """Whether an inflow of the collector counts as a gather transfer: `edge_qualifies` without its channel test
    (provenance holds transfers between accounts only, and `detect` asks for those)."""
    if gather.src == collector:
        return False
    attrs = gather.attrs
    return (min_amount <= 0 or attrs.amount >= min_amount) and (not require_loan or attrs.loan > 0)


def _walk_legs(gather: "Inflow", since: int, wanted: set[str], found: dict, branch_cap: int,
               min_amount: int) -> None:
    """One gather's legs from `since` into `found`: `walk(gather.before, since, gather ts, branch_cap)` written out
    (a generator's resume per inflow was most of its cost), keeping the legs from `wanted` origins."""
    mid, gather_ts, gather_key, gattrs = gather.src, gather.ts, gather.key, gather.attrs
    seen, leg = set(), gather.before
    while leg is not None and leg.newest >= since:
        ts = leg.ts
        if ts >= since:
            origin = leg.src
            if origin not in seen:
                if len(seen) >= branch_cap:
                    break
                seen.add(origin)
            if (ts <= gather_ts and origin in wanted and origin != mid
                    and (min_amount <= 0 or leg.attrs.amount >= min_amount)):
                _keep(found, origin, mid, (gather_ts, gather_key, ts, leg.key, leg.attrs, gattrs, mid))
        leg = leg.rest


def _keep(found: dict, origin: str, mid: str, leg: tuple) -> None:
    """Per origin and intermediary, the earliest (gather ts, gather key, leg ts, leg key, ...)."""
    legs = found.get(origin)
    if legs is None:
        legs = found[origin] = {}
    known = legs.get(mid)
    if known is None or leg[:4] < known[:4]:
        legs[mid] = leg


class _CollectorLegs:
    """One collector's gathers from `floor` on, up to `head`: the senders of its inflows (for the degree cap), the
    legs of each qualifying gather by origin, and the gathers whose own leg walk the branch cap cut (walked again
    for each search)."""

    __slots__ = ("floor", "head", "senders", "by_origin", "capped")

    def __init__(self, floor: int) -> None:
        self.floor = floor
        self.head: Inflow | None = None
        self.senders: set[str] = set()
        self.by_origin: dict[str, list[tuple]] = {}     # origin -> [(gather ts, gather key, leg ts, leg key, ...)]
        self.capped: list[Inflow] = []


class LegIndex:
    """`_legs` for one rule's parameters, kept per collector between the gathers of one partition.

    Why it is exact. Inflow lists only grow at the head, and a trim only cuts entries older than the window's
    cutoff, which every search skips. An entry holds what `_legs` would read from `floor` on: a search with
    `since >= floor` filters it by time. A gather's legs are walked once, from the later of `floor` and its own
    time minus `within` (no search that reads the gather starts earlier): that walk passes more inflows than a
    search's from its `since`, so where it was not cut by the branch cap, neither is the search's, and its legs
    filtered by time are the search's; where it was cut, the gather is walked again for each search. The
    collector's own walk is cut by the degree cap only when it meets more distinct senders than the cap, and the
    entry counts every sender from `floor` on: above the cap, `legs` returns None and the caller walks.

    An entry is rebuilt once its floor is `within` behind the search's `since` (its lists would hold mostly what
    every search skips), and entries of collectors not searched for that long are dropped."""

    def __init__(self, within: int, min_amount: int, require_loan: bool, degree_cap: int, branch_cap: int) -> None:
        self.min_amount, self.require_loan = min_amount, require_loan
        self.degree_cap, self.branch_cap = degree_cap, branch_cap
        self.within = within
        self.stale_after = max(1, within)
        self.collectors: dict[str, _CollectorLegs] = {}
        self.swept_at: int | None = None

    def legs(self, collector: str, head: "Inflow | None", since: int, until: int,
             wanted: set[str]) -> dict[str, dict[str, tuple]] | None:
        self._sweep(since)
        entry = self.collectors.get(collector)
        if entry is None or since < entry.floor or since - entry.floor > self.stale_after:
            entry = self.collectors[collector] = _CollectorLegs(since)
        self._sync(entry, collector, head)
        if len(entry.senders) > self.degree_cap:
            return None
        found: dict[str, dict[str, tuple]] = {}
        by_origin = entry.by_origin
        for origin in wanted:
            for leg in by_origin.get(origin, ()):
                if leg[0] <= until and leg[2] >= since:      # the leg is never later than its gather
                    _keep(found, origin, leg[6], leg)
        for gather in entry.capped:
            if since <= gather.ts <= until:
                _walk_legs(gather, since, wanted, found, self.branch_cap, self.min_amount)
        return found

    def _sweep(self, since: int) -> None:
        if self.swept_at is None or since - self.swept_at > self.stale_after:
            self.swept_at = since
            self.collectors = {collector: entry for collector, entry in self.collectors.items()
                               if since - entry.floor <= self.stale_after}

    def _sync(self, entry: _CollectorLegs, collector: str, head: "Inflow | None") -> None:
        """Take in the collector's inflows that arrived since the entry last saw its head."""
        floor, stop, min_amount, require_loan = entry.floor, entry.head, self.min_amount, self.require_loan
        gather = head
        while gather is not None and gather is not stop and gather.newest >= floor:
            if gather.ts >= floor:
                entry.senders.add(gather.src)
                if _gathers(gather, collector, min_amount, require_loan):
                    self._index_gather(entry, gather)
            gather = gather.rest
        entry.head = head

    def _index_gather(self, entry: _CollectorLegs, gather: "Inflow") -> None:
        # A search that reads this gather has since >= gather ts - within as well as >= the entry's floor.
        gather_ts = gather.ts
        floor, branch_cap, min_amount = max(entry.floor, gather_ts - self.within), self.branch_cap, self.min_amount
        mid, gather_key, gattrs = gather.src, gather.key, gather.attrs
        found, seen, leg = [], set(), gather.before
        while leg is not None and leg.newest >= floor:
            ts = leg.ts
            if ts >= floor:
                origin = leg.src
                if origin not in seen:
                    if len(seen) >= branch_cap:
                        entry.capped.append(gather)
                        return
                    seen.add(origin)
                if ts <= gather_ts and origin != mid and (min_amount <= 0 or leg.attrs.amount >= min_amount):
                    found.append((origin, (gather_ts, gather_key, ts, leg.key, leg.attrs, gattrs, mid)))
            leg = leg.rest
        by_origin = entry.by_origin
        for origin, indexed in found:
            legs = by_origin.get(origin)
            if legs is None:
                by_origin[origin] = [indexed]
            else:
                legs.append(indexed)


def _index(rule: "Rule", state: "DetectionState") -> LegIndex:
    params, limits = rule.params, state.limits
    key = (params["within"], params["min_amount"], params["require_loan_money"], limits.degree_cap,
           limits.branch_cap)
    views = state.views.get(NAME)
    if views is None:
        views = state.views[NAME] = {}
    index = views.get(key)
    if index is None:
        index = views[key] = LegIndex(*key)
    return index


def detect(rule: "Rule", event: "Event", state: "DetectionState") -> list[Finding]:
    """At C, on a gather transfer X -> C: is there an A that sent to X and to enough other intermediaries that
    all passed money on to C, in time order, within the window?"""
    if not isinstance(event, Transfer):
        return []
    params = rule.params
    channels, min_amount, require_loan = params["channels"], params["min_amount"], params["require_loan_money"]
    allocation = state.allocation
    loan_amount = allocation.loan_amount if allocation is not None else 0
    if not event_qualifies(event, loan_amount, channels, min_amount, require_loan, 0.0) or "p2p" not in channels:
        return []       # provenance keeps transfers between accounts only (stream.detection.provenance)
    graph, limits = state.graph, state.limits
    collector = sink_node(event)
    if graph.sender_count(collector) < params["min_intermediaries"] or state.before is None:
        return []       # not enough neighbours in the whole window: no scan
    since, until = state.window_start(event.ts - params["within"]), event.ts
    origins = sorted({leg.src for leg in walk(state.before, since, until, limits.degree_cap)
                      if leg.src != collector and edge_qualifies(leg.attrs, channels, min_amount, False, 0.0)})
    wanted = set(origins[:limits.branch_cap])
    if not wanted or _gatherers(state, collector, since, until, channels, min_amount, require_loan,
                                params["min_intermediaries"]) < params["min_intermediaries"]:
        return []
    head = state.provenance.inflows(collector)
    found = _index(rule, state).legs(collector, head, since, until, wanted)
    if found is None:
        found = _legs(head, collector, since, until, limits, min_amount, require_loan, wanted)
    best = None
    for origin in sorted(found):
        legs = found[origin]
        if event.src not in legs or len(legs) < params["min_intermediaries"]:
            continue
        total = sum(found_leg[5].amount for found_leg in legs.values())
        if total < params["min_total"]:
            continue
        if best is None or (len(legs), total) > (len(best[1]), best[2]):
            best = (origin, legs, total)
    if best is None:
        return []
    origin, legs, total = best
    mids = sorted(legs)
    timed = sorted([(leg[2], leg[3]) for leg in legs.values()] + [(leg[0], leg[1]) for leg in legs.values()])
    first_ts = timed[0][0]
    elapsed = event.ts - first_ts
    attrs_all = [attrs for found_leg in legs.values() for attrs in (found_leg[4], found_leg[5])]
    return [Finding(
        subject=f"{origin}->{collector}", accounts=(origin, collector, *mids), loan_ids=loans_of(attrs_all),
        txn_ids=tuple(key for _, key in timed), amount=total, first_ts=first_ts,
        score=evidence_score(count_strength(len(mids), params["min_intermediaries"]),
                             quickness(elapsed, params["within"])),
        summary=(f"{origin} scattered money over {len(mids)} accounts that gathered {format_minor(total)} "
                 f"{event.currency} into {collector} within {format_elapsed(elapsed)}"),
        evidence={"paths": [[origin, mid, collector] for mid in mids], "intermediaries": len(mids),
                  "elapsed_s": elapsed // 1000},
    )]
