"""fan_out: one account disperses money to many distinct accounts within a short window.

Why it matters: a loan split among many mule accounts to stay under limits. A company paying salaries fans
out too, but with its own (non-loan) money: `require_loan_money` (default true) keeps it quiet.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...model.events import Transfer
from ...model.money import format_minor
from ..finding import Finding
from ._common import (Param, channels_param, count, format_elapsed, hours, min_amount_param, min_loan_share_param,
                      min_total_param, percent, require_loan_money_param, star, star_prefilter,
                      within_param)

if TYPE_CHECKING:
    from ...model.events import Event
    from ...rules.model import Rule
    from ..state import DetectionState

NAME = "fan_out"
TRIGGERS = frozenset({"transfer"})
STAGES = ("sent",)

PARAMS = (
    Param("min_targets", count(2), 5, "Fewest distinct receiving accounts.", looser="lower"),
    within_param(hours(24), "All counted transfers happen within this long of each other (ending now)."),
    channels_param(frozenset({"p2p"}), "Transfer channels that count (default p2p: account to account)."),
    min_amount_param("Ignore single transfers smaller than this (units)."),
    min_total_param("Fewest units the counted transfers must add up to."),
    require_loan_money_param(True, "Count only transfers carrying money traced to a disbursement."),
    min_loan_share_param("With require_loan_money: least share of a transfer's amount traced to loans."),
)


def channels(rule: "Rule") -> frozenset[str]:
    return rule.params["channels"]


def prefilter(rule: "Rule", stage: str):
    """`star`'s cheap exits: the transfer qualifies and the payer has `min_targets` counterparts in the window."""
    return star_prefilter(rule, incoming=False, min_count="min_targets")


def detect(rule: "Rule", event: "Event", state: "DetectionState") -> list[Finding]:
    """On a transfer: has its source now sent to `min_targets` distinct accounts in the window?"""
    if not isinstance(event, Transfer):
        return []
    payer = event.src
    minimum = rule.params["min_targets"]
    found = star(rule, event, state, payer, incoming=False, min_count=minimum)
    if found is None:
        return []
    targets = found.counterparts
    return [found.finding(
        payer, minimum,
        summary=(f"{payer} sent {format_minor(found.total)} {event.currency} to {len(targets)} accounts within "
                 f"{format_elapsed(found.elapsed)} ({percent(found.loan_total / found.total)} traced to loans)"),
        evidence={"paths": [[payer, dst] for dst in targets], "targets": len(targets)},
    )]
