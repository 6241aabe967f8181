"""gather_scatter: one account M receives from many and sends to many within a window (many -> M -> many).

Why it matters: a hub that pools money from many accounts and redistributes it is a classic layering node.
A merchant gathers but never pays out p2p; a payroll account scatters but does not gather from many.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...model.events import Transfer
from ...model.money import format_minor
from ..finding import Finding
from ..graph import sink_node
from ._common import (Param, channels_param, count, edge_qualifies, event_qualifies, format_elapsed, hours,
                      loans_of, max_counterparties_param, min_amount_param, min_total_param,
                      require_loan_money_param, too_busy, within_param, count_strength, evidence_score, quickness)

if TYPE_CHECKING:
    from ...model.events import Event
    from ...rules.model import Rule
    from ..state import DetectionState

NAME = "gather_scatter"
TRIGGERS = frozenset({"transfer"})
STAGES = ("sent", "received")

PARAMS = (
    Param("min_sources", count(2), 5, "Fewest distinct accounts sending to M.", looser="lower"),
    Param("min_targets", count(2), 5, "Fewest distinct accounts M sends to.", looser="lower"),
    within_param(hours(24), "All counted transfers, in and out of M, happen within this long."),
    channels_param(frozenset({"p2p"}), "Transfer channels that count (default p2p)."),
    min_amount_param("Ignore single transfers smaller than this (units)."),
    min_total_param("Fewest units M must have gathered."),
    require_loan_money_param(False, "Count only outgoing transfers carrying money traced to a disbursement."),
    max_counterparties_param("Leave out hubs with more counterparties than this (distinct senders plus receivers) "
                             "in the whole graph window: busy accounts that gather and pay out as ordinary "
                             "business. 0: no limit."),
)


def channels(rule: "Rule") -> frozenset[str]:
    return rule.params["channels"]


def prefilter(rule: "Rule", stage: str):
    """The exits of `detect` before its scans: the transfer qualifies, and the hub (the sender at `sent`, the
    receiver at `received` unless this rule already fired at `sent`) has enough senders and receivers in the
    whole window and is not too busy."""
    params = rule.params
    min_amount, require_loan, rule_id = params["min_amount"], params["require_loan_money"], rule.id
    min_sources, min_targets, busy = params["min_sources"], params["min_targets"], params["max_counterparties"]

    def test(event: Transfer, state: "DetectionState") -> bool:
        if event.amount < min_amount:
            return False
        if stage == "sent":
            if require_loan:
                allocation = state.allocation
                if allocation is None or allocation.loan_amount <= 0:
                    return False
            hub = event.src
        elif rule_id in state.fired:
            return False
        else:
            hub = sink_node(event)
        senders, receivers = state.graph.degrees(hub)
        return (senders >= min_sources and receivers >= min_targets
                and not (busy > 0 and senders + receivers > busy))
    return test


def detect(rule: "Rule", event: "Event", state: "DetectionState") -> list[Finding]:
    """On a transfer: is its sender (at the sender) or else its receiver (at the receiver) now a hub that
    gathered from many and scattered to many?"""
    if not isinstance(event, Transfer):
        return []
    params = rule.params
    channels, min_amount, require_loan = params["channels"], params["min_amount"], params["require_loan_money"]
    allocation = state.allocation
    loan_amount = allocation.loan_amount if allocation is not None else 0
    as_gather = event_qualifies(event, 0, channels, min_amount, False, 0.0)
    if not as_gather:
        return []
    if state.stage == "sent":
        hubs = [event.src] if event_qualifies(event, loan_amount, channels, min_amount, require_loan, 0.0) else []
    else:
        hubs = [] if rule.id in state.fired else [sink_node(event)]
    graph, cap = state.graph, state.limits.degree_cap
    since, until = event.ts - params["within"], event.ts
    for hub in hubs:
        if graph.sender_count(hub) < params["min_sources"] or graph.receiver_count(hub) < params["min_targets"]:
            continue    # not enough neighbours in the whole window: no scan
        if too_busy(graph, hub, params["max_counterparties"]):
            continue
        # Counted before anything is built: a hub usually has too few distinct targets (or sources) in `within`.
        if not (graph.has_receivers(hub, since, until, cap, channels, min_amount, require_loan, params["min_targets"])
                and graph.has_senders(hub, since, until, cap, channels, min_amount, False, params["min_sources"])):
            continue
        ins = sorted(((attrs.ts, key, src, attrs) for src, key, attrs in graph.in_edges(hub, since, until, cap)
                      if edge_qualifies(attrs, channels, min_amount, False, 0.0)), key=lambda e: (e[0], e[1]))
        sources = sorted({src for _, _, src, _ in ins})
        if len(sources) < params["min_sources"]:
            continue
        outs = sorted(((attrs.ts, key, dst, attrs) for dst, key, attrs in graph.out_edges(hub, since, until, cap)
                       if edge_qualifies(attrs, channels, min_amount, require_loan, 0.0)), key=lambda e: (e[0], e[1]))
        targets = sorted({dst for _, _, dst, _ in outs})
        if len(targets) < params["min_targets"] or ins[0][0] > outs[-1][0]:
            continue
        gathered = sum(attrs.amount for _, _, _, attrs in ins)
        if gathered < params["min_total"]:
            continue
        scattered = sum(attrs.amount for _, _, _, attrs in outs)
        timed = sorted({(ts, key) for ts, key, _, _ in ins + outs})
        first_ts = timed[0][0]
        elapsed = event.ts - first_ts
        others = tuple(dict.fromkeys(sources + targets))
        return [Finding(
            subject=hub, accounts=(hub, *(a for a in others if a != hub)),
            loan_ids=loans_of(attrs for _, _, _, attrs in ins + outs),
            txn_ids=tuple(key for _, key in timed), amount=gathered, first_ts=first_ts,
            score=evidence_score(count_strength(len(sources), params["min_sources"]),
                                 count_strength(len(targets), params["min_targets"]),
                                 quickness(elapsed, params["within"])),
            summary=(f"{hub} gathered {format_minor(gathered)} {event.currency} from {len(sources)} accounts and "
                     f"scattered {format_minor(scattered)} to {len(targets)} within {format_elapsed(elapsed)}"),
            evidence={"paths": [[src, hub] for src in sources] + [[hub, dst] for dst in targets],
                      "sources": len(sources), "targets": len(targets), "elapsed_s": elapsed // 1000,
                      "scattered": format_minor(scattered)},
        )]
    return []
