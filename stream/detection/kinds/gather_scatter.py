"""gather_scatter: one account M receives from many and sends to many within a window (many -> M -> many).

Why it matters: a hub that pools money from many accounts and redistributes it is a classic layering node.
A merchant gathers but never pays out p2p; a payroll account scatters but does not gather from many.
"""

from __future__ import annotations

from ._common import (Param, channels_param, count, hours, min_amount_param, min_total_param,
                      require_loan_money_param, within_param)

NAME = "gather_scatter"
TRIGGERS = frozenset({"transfer"})

PARAMS = (
    Param("min_sources", count(2), 3, "Fewest distinct accounts sending to M.", looser="lower"),
    Param("min_targets", count(2), 3, "Fewest distinct accounts M sends to.", looser="lower"),
    within_param(hours(24), "All counted transfers, in and out of M, happen within this long."),
    channels_param(frozenset({"p2p"}), "Transfer channels that count (default p2p)."),
    min_amount_param("Ignore single transfers smaller than this (units)."),
    min_total_param("Fewest units M must have gathered."),
    require_loan_money_param(False, "Count only outgoing transfers carrying money traced to a disbursement."),
)


def detect(rule, event, state):
    """Not implemented yet: finds nothing."""
    return ()
