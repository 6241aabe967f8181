"""scatter_gather: money leaves one account A to several intermediaries, each of which passes it on to the same
account C (A -> many -> C), within a window.

Why it matters: splitting a sum across mules and regrouping it hides the direct A -> C link that a single
transfer would show.
"""

from __future__ import annotations

from ._common import (Param, channels_param, count, hours, min_amount_param, min_total_param,
                      require_loan_money_param, within_param)

NAME = "scatter_gather"
TRIGGERS = frozenset({"transfer"})

PARAMS = (
    Param("min_intermediaries", count(2), 3, "Fewest distinct intermediaries between A and C.", looser="lower"),
    within_param(hours(24), "From the first scatter transfer to the last gather transfer."),
    channels_param(frozenset({"p2p"}), "Transfer channels that count (default p2p)."),
    min_amount_param("Ignore single transfers smaller than this (units)."),
    min_total_param("Fewest units the gather transfers into C must add up to."),
    require_loan_money_param(False, "Count only gather transfers carrying money traced to a disbursement."),
)


def detect(rule, event, state):
    """Not implemented yet: finds nothing."""
    return ()
