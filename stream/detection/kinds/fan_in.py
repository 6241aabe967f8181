"""fan_in: many distinct accounts send money to one account within a short window.

Why it matters: batch-registered borrowers who each take a loan and funnel it to one collector. Friends
splitting a bill also fan in, but few of them, small sums and not loan money; a merchant collects many
payments, but through the `merchant` channel to a merchant node, which the default `channels: [p2p]` excludes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...model.events import Transfer
from ...model.money import format_minor
from ..finding import Finding
from ..graph import sink_node
from ._common import (Param, channels_param, count, format_elapsed, hours, max_counterparties_param, min_amount_param,
                      min_loan_share_param, min_total_param, percent, require_loan_money_param, star, star_prefilter,
                      within_param)

if TYPE_CHECKING:
    from ...model.events import Event
    from ...rules.model import Rule
    from ..state import DetectionState

NAME = "fan_in"
TRIGGERS = frozenset({"transfer"})
STAGES = ("received",)

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


def channels(rule: "Rule") -> frozenset[str]:
    return rule.params["channels"]


def prefilter(rule: "Rule", stage: str):
    """`star`'s cheap exits: the transfer qualifies and the collector has `min_sources` counterparts in the window."""
    return star_prefilter(rule, incoming=True, min_count="min_sources")


def detect(rule: "Rule", event: "Event", state: "DetectionState") -> list[Finding]:
    """On a transfer: has its destination now received from `min_sources` distinct accounts in the window?"""
    if not isinstance(event, Transfer):
        return []
    collector = sink_node(event)
    minimum = rule.params["min_sources"]
    found = star(rule, event, state, collector, incoming=True, min_count=minimum)
    if found is None:
        return []
    sources = found.counterparts
    return [found.finding(
        collector, minimum,
        summary=(f"{len(sources)} accounts sent {format_minor(found.total)} {event.currency} to {collector} within "
                 f"{format_elapsed(found.elapsed)} ({percent(found.loan_total / found.total)} traced to loans)"),
        evidence={"paths": [[src, collector] for src in sources], "sources": len(sources)},
    )]
