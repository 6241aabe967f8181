"""fan_out: one account disperses money to many distinct accounts within a short window.

Why it matters: a loan split among many mule accounts to stay under limits. A company paying salaries fans
out too, but with its own (non-loan) money: `require_loan_money` (default true) keeps it quiet.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...events import Transfer
from ...money import format_minor
from ..finding import Finding
from ._common import (Param, channels_param, count, densest_window, edge_qualifies, event_qualifies, format_elapsed,
                      hours, loans_of, min_amount_param, min_loan_share_param, min_total_param, percent,
                      require_loan_money_param, threshold_score, within_param)

if TYPE_CHECKING:
    from ...events import Event
    from ...rules.model import Rule
    from ..state import DetectionState

NAME = "fan_out"
TRIGGERS = frozenset({"transfer"})

PARAMS = (
    Param("min_targets", count(2), 5, "Fewest distinct receiving accounts.", looser="lower"),
    within_param(hours(24), "All counted transfers happen within this long of each other (ending now)."),
    channels_param(frozenset({"p2p"}), "Transfer channels that count (default p2p: account to account)."),
    min_amount_param("Ignore single transfers smaller than this (units)."),
    min_total_param("Fewest units the counted transfers must add up to."),
    require_loan_money_param(True, "Count only transfers carrying money traced to a disbursement."),
    min_loan_share_param("With require_loan_money: least share of a transfer's amount traced to loans."),
)


def detect(rule: "Rule", event: "Event", state: "DetectionState") -> list[Finding]:
    """On a transfer: has its source now sent to `min_targets` distinct accounts in the window?"""
    if not isinstance(event, Transfer):
        return []
    params = rule.params
    allocation = state.allocation
    loan_amount = allocation.loan_amount if allocation is not None else 0
    filters = (params["channels"], params["min_amount"], params["require_loan_money"], params["min_loan_share"])
    if not event_qualifies(event, loan_amount, *filters):
        return []
    payer = event.src
    if len(state.graph.g._succ[payer]) < params["min_targets"]:
        return []       # fewer neighbours in the whole window than needed: no scan
    since = event.ts - params["within"]
    edges = densest_window([(dst, key, attrs) for dst, key, attrs in
                            state.graph.out_edges(payer, since, event.ts + params["within"], state.limits.degree_cap)
                            if edge_qualifies(attrs, *filters)], event.ts, params["within"])
    targets = sorted({dst for dst, _, _ in edges})
    if len(targets) < params["min_targets"]:
        return []
    total = sum(attrs["amount"] for _, _, attrs in edges)
    if total < params["min_total"]:
        return []
    edges.sort(key=lambda edge: (edge[2]["ts"], edge[1]))
    first_ts = edges[0][2]["ts"]
    loan_total = sum(attrs.get("loan", 0) for _, _, attrs in edges)
    elapsed = edges[-1][2]["ts"] - first_ts
    return [Finding(
        subject=payer, accounts=(payer, *targets), loan_ids=loans_of(attrs for _, _, attrs in edges),
        txn_ids=tuple(key for _, key, _ in edges), amount=total, first_ts=first_ts,
        score=threshold_score(len(targets), params["min_targets"]),
        summary=(f"{payer} sent {format_minor(total)} {event.currency} to {len(targets)} accounts within "
                 f"{format_elapsed(elapsed)} ({percent(loan_total / total)} traced to loans)"),
        evidence={"paths": [[payer, dst] for dst in targets], "targets": len(targets),
                  "transfers": len(edges), "elapsed_s": elapsed // 1000,
                  "loan_share": round(loan_total / total, 4)},
    )]
