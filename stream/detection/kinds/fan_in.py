"""fan_in: many distinct accounts send money to one account within a short window.

Why it matters: batch-registered borrowers who each take a loan and funnel it to one collector. Friends
splitting a bill also fan in, but few of them, small sums and not loan money; a merchant collects many
payments, but through the `merchant` channel to a merchant node, which the default `channels: [p2p]` excludes.
"""

from __future__ import annotations

from ._common import (Param, count, hours, min_amount_param, min_loan_share_param, min_total_param,
                      require_loan_money_param, channels_param, within_param)

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
)


def detect(rule, event, state):
    """Not implemented yet: finds nothing."""
    return ()
