"""fan_in: many distinct accounts send money to one account within a short window.

Why it matters: batch-registered borrowers who each take a loan and funnel it to one collector. Friends
splitting a bill also fan in, but few of them, small sums and not loan money; a merchant collects many
payments, but through the `merchant` channel to a merchant node, which the default `channels: [p2p]` excludes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...events import Transfer
from ...money import format_minor
from ..finding import Finding
from ..graph import sink_node
from ._common import (Param, channels_param, count, densest_window, edge_qualifies, event_qualifies, format_elapsed,
                      hours, loans_of, max_counterparties_param, min_amount_param, min_loan_share_param,
                      min_total_param, percent, require_loan_money_param, threshold_score, too_busy, within_param)

if TYPE_CHECKING:
    from ...events import Event
    from ...rules.model import Rule
    from ..state import DetectionState

NAME = "fan_in"
TRIGGERS = frozenset({"transfer"})

PARAMS = (
    Param("min_sources", count(2), 5, "Fewest distinct sending accounts.", looser="lower"),
    within_param(hours(24), "All counted transfers happen within this long of each other (ending now)."),
    channels_param(frozenset({"p2p"}), "Transfer channels that count (default p2p: account to account)."),
    min_amount_param("Ignore single transfers smaller than this (units)."),
    min_total_param("Fewest units the counted transfers must add up to."),
    require_loan_money_param(True, "Count only transfers carrying money traced to a disbursement."),
    min_loan_share_param("With require_loan_money: least share of a transfer's amount traced to loans."),
    max_counterparties_param("Leave out collectors with more counterparties than this (distinct senders plus "
                             "receivers) in the whole graph window: busy accounts whose inflow is ordinary "
                             "business. 0: no limit. Useful when require_loan_money is false."),
)


def detect(rule: "Rule", event: "Event", state: "DetectionState") -> list[Finding]:
    """On a transfer: has its destination now received from `min_sources` distinct accounts in the window?"""
    if not isinstance(event, Transfer):
        return []
    params = rule.params
    allocation = state.allocation
    loan_amount = allocation.loan_amount if allocation is not None else 0
    filters = (params["channels"], params["min_amount"], params["require_loan_money"], params["min_loan_share"])
    if not event_qualifies(event, loan_amount, *filters):
        return []
    collector = sink_node(event)
    if len(state.graph.g._pred[collector]) < params["min_sources"]:
        return []       # fewer neighbours in the whole window than needed: no scan
    if too_busy(state.graph, collector, params["max_counterparties"]):
        return []
    since = event.ts - params["within"]
    edges = densest_window([(src, key, attrs) for src, key, attrs in
                            state.graph.in_edges(collector, since, event.ts + params["within"], state.limits.degree_cap)
                            if edge_qualifies(attrs, *filters)], event.ts, params["within"])
    sources = sorted({src for src, _, _ in edges})
    if len(sources) < params["min_sources"]:
        return []
    total = sum(attrs["amount"] for _, _, attrs in edges)
    if total < params["min_total"]:
        return []
    edges.sort(key=lambda edge: (edge[2]["ts"], edge[1]))
    first_ts = edges[0][2]["ts"]
    loan_total = sum(attrs.get("loan", 0) for _, _, attrs in edges)
    elapsed = edges[-1][2]["ts"] - first_ts
    return [Finding(
        subject=collector, accounts=(collector, *sources), loan_ids=loans_of(attrs for _, _, attrs in edges),
        txn_ids=tuple(key for _, key, _ in edges), amount=total, first_ts=first_ts,
        score=threshold_score(len(sources), params["min_sources"]),
        summary=(f"{len(sources)} accounts sent {format_minor(total)} {event.currency} to {collector} within "
                 f"{format_elapsed(elapsed)} ({percent(loan_total / total)} traced to loans)"),
        evidence={"paths": [[src, collector] for src in sources], "sources": len(sources),
                  "transfers": len(edges), "elapsed_s": elapsed // 1000,
                  "loan_share": round(loan_total / total, 4)},
    )]
