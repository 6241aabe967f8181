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
    origins = sorted({leg.src for leg in walk(state.before, since, until, limits.degree_cap)
                      if leg.src != collector and edge_qualifies(leg.attrs, channels, min_amount, False, 0.0)})
    wanted = set(origins[:limits.branch_cap])
    if not wanted or _gatherers(state, collector, since, until, channels, min_amount, require_loan,
                                params["min_intermediaries"]) < params["min_intermediaries"]:
        return []
    # origin -> intermediary -> (leg key, leg attrs, gather key, gather attrs): per intermediary its earliest
    # gather into C, and of what it had received from the origin by then, the earliest leg.
    found: dict[str, dict[str, tuple[str, dict, str, dict]]] = {}
    branch_cap = limits.branch_cap
    for gather in walk(state.provenance.inflows(collector), since, until, limits.degree_cap):
        mid, gattrs = gather.src, gather.attrs
        if mid == collector or not edge_qualifies(gattrs, channels, min_amount, require_loan, 0.0):
            continue
        # `walk(gather.before, since, gattrs["ts"], branch_cap)` written out: this is the innermost loop of the
        # kind (every inflow of every intermediary), where a generator's resume per inflow is most of the cost.
        gather_ts, seen, leg = gattrs["ts"], set(), gather.before
        while leg is not None and leg.newest >= since:
            attrs = leg.attrs
            ts = attrs["ts"]
            if ts >= since:
                origin = leg.src
                if origin not in seen:
                    if len(seen) >= branch_cap:
                        break
                    seen.add(origin)
                if (ts <= gather_ts and origin in wanted and origin != mid and attrs["channel"] in channels
                        and attrs["amount"] >= min_amount):
                    legs = found.setdefault(origin, {})
                    known = legs.get(mid)
                    if known is None or ((gather_ts, gather.key), (ts, leg.key)) < (
                            (known[3]["ts"], known[2]), (known[1]["ts"], known[0])):
                        legs[mid] = (leg.key, attrs, gather.key, gattrs)
            leg = leg.rest
    best = None
    for origin in sorted(found):
        legs = found[origin]
        if event.src not in legs or len(legs) < params["min_intermediaries"]:
            continue
        total = sum(gather["amount"] for _, _, _, gather in legs.values())
        if total < params["min_total"]:
            continue
        if best is None or (len(legs), total) > (len(best[1]), best[2]):
            best = (origin, legs, total)
    if best is None:
        return []
    origin, legs, total = best
    mids = sorted(legs)
    timed = sorted([(a["ts"], k) for k, a, _, _ in legs.values()] + [(g["ts"], gk) for _, _, gk, g in legs.values()])
    first_ts = timed[0][0]
    elapsed = event.ts - first_ts
    attrs_all = [a for leg in legs.values() for a in (leg[1], leg[3])]
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
