"""scatter_gather: money leaves one account A to several intermediaries, each of which passes it on to the same
account C (A -> many -> C), within a window.

Why it matters: splitting a sum across mules and regrouping it hides the direct A -> C link that a single
transfer would show.

Runs at C, from provenance: C's inflows, and for each what its sender had received before paying C. A leg
A -> M counts when M had received it by the time M paid C (a leg booked after the gather it funds is not seen).
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


def _origins(before: "Inflow | None", collector: str, since: int, until: int, cap: int, channels: frozenset[str],
             min_amount: int) -> set[str]:
    """Who sent qualifying money to the gather transfer's sender before it paid the collector: `walk(before, since,
    until, cap)` written out, as in `_legs`."""
    origins: set[str] = set()
    if "p2p" not in channels:
        return origins      # provenance keeps transfers between accounts only (stream.detection.provenance)
    seen: set[str] = set()
    leg = before
    while leg is not None and leg.newest >= since:
        ts = leg.ts
        if ts >= since:
            src = leg.src
            if src not in seen:
                if len(seen) >= cap:
                    break
                seen.add(src)
            if ts <= until and src != collector and leg.attrs["amount"] >= min_amount:
                origins.add(src)
        leg = leg.rest
    return origins


def _legs(head: "Inflow | None", collector: str, since: int, until: int, limits, channels: frozenset[str],
          min_amount: int, require_loan: bool, wanted: set[str]) -> dict[str, dict[str, tuple]]:
    """origin -> intermediary -> (gather ts, gather key, leg ts, leg key, leg attrs, gather attrs): per
    intermediary its earliest gather into the collector, and of what it had received from the origin by then,
    the earliest leg.

    The innermost loops of the kind (every inflow of every intermediary), so both walks are written out rather
    than taken from `walk`, whose generator resume per inflow was most of their cost: the gathers are
    `walk(head, since, until, degree_cap)` and each gather's legs `walk(gather.before, since, gather ts,
    branch_cap)`, with the same caps counted the same way."""
    found: dict[str, dict[str, tuple]] = {}
    if "p2p" not in channels:
        return found        # provenance keeps transfers between accounts only (stream.detection.provenance)
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
        gattrs = gather.attrs
        if (gather_ts > until or mid == collector or (min_amount > 0 and gattrs["amount"] < min_amount)
                or (require_loan and gattrs.get("loan", 0) <= 0)):
            gather = gather.rest
            continue
        gather_key, seen, leg = gather.key, set(), gather.before
        while leg is not None and leg.newest >= since:
            ts = leg.ts
            if ts >= since:
                origin = leg.src
                if origin not in seen:
                    if len(seen) >= branch_cap:
                        break
                    seen.add(origin)
                if (ts <= gather_ts and origin in wanted and origin != mid
                        and (min_amount <= 0 or leg.attrs["amount"] >= min_amount)):
                    legs = found.get(origin)
                    if legs is None:
                        legs = found[origin] = {}
                    known = legs.get(mid)
                    if known is None or (gather_ts, gather_key, ts, leg.key) < known[:4]:
                        legs[mid] = (gather_ts, gather_key, ts, leg.key, leg.attrs, gattrs)
            leg = leg.rest
        gather = gather.rest
    return found


def detect(rule: "Rule", event: "Event", state: "DetectionState") -> list[Finding]:
    """At C, on a gather transfer X -> C: is there an A that sent to X and to enough other intermediaries that
    all passed money on to C, in time order, within the window?"""
    if not isinstance(event, Transfer):
        return []
    params = rule.params
    channels, min_amount, require_loan = params["channels"], params["min_amount"], params["require_loan_money"]
    allocation = state.allocation
    loan_amount = allocation.loan_amount if allocation is not None else 0
    if not event_qualifies(event, loan_amount, channels, min_amount, require_loan, 0.0):
        return []
    graph, limits = state.graph, state.limits
    collector = sink_node(event)
    if graph.sender_count(collector) < params["min_intermediaries"] or state.before is None:
        return []       # not enough neighbours in the whole window: no scan
    since, until = state.window_start(event.ts - params["within"]), event.ts
    origins = sorted(_origins(state.before, collector, since, until, limits.degree_cap, channels, min_amount))
    wanted = set(origins[:limits.branch_cap])
    if not wanted or _gatherers(state, collector, since, until, channels, min_amount, require_loan,
                                params["min_intermediaries"]) < params["min_intermediaries"]:
        return []
    found = _legs(state.provenance.inflows(collector), collector, since, until, limits, channels, min_amount,
                  require_loan, wanted)
    best = None
    for origin in sorted(found):
        legs = found[origin]
        if event.src not in legs or len(legs) < params["min_intermediaries"]:
            continue
        total = sum(found_leg[5]["amount"] for found_leg in legs.values())
        if total < params["min_total"]:
            continue
        if best is None or (len(legs), total) > (len(best[1]), best[2]):
            best = (origin, legs, total)
    if best is None:
        return []
    origin, legs, total = best
    mids = sorted(legs)
    timed = sorted([(leg_ts, leg_key) for _, _, leg_ts, leg_key, _, _ in legs.values()]
                   + [(gather_ts, gather_key) for gather_ts, gather_key, _, _, _, _ in legs.values()])
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
