"""fan_out: one account disperses money to many distinct accounts within a short window.

Why it matters: a loan split among many mule accounts to stay under limits. A company paying salaries fans
out too, but with its own (non-loan) money: `require_loan_money` (default true) keeps it quiet.
"""

from __future__ import annotations

from ._common import (Param, channels_param, count, hours, min_amount_param, min_loan_share_param,
                      min_total_param, require_loan_money_param, within_param)

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


def detect(rule, event, state):
    """Not implemented yet: finds nothing."""
    return ()
