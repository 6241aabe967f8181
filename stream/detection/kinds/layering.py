"""layering: traced money hops through several accounts in quick succession, each hop passing on most of
what it received and holding it only briefly.

Why it matters: chains of pass-through accounts put distance between a loan and where it ends up. Ordinary
money rests in an account (it is spent or saved); laundered money moves on within minutes, almost whole.
"""

from __future__ import annotations

from ._common import Param, count, hours, min_amount_param, ratio, require_loan_money_param, show_duration, \
    duration, within_param

NAME = "layering"
TRIGGERS = frozenset({"transfer"})

PARAMS = (
    Param("min_hops", count(2, 10), 3, "Fewest consecutive transfers of the same money to call it layering.",
          looser="lower"),
    within_param(hours(24), "The run of hops must happen within this long (first hop to last hop)."),
    Param("max_decay", ratio, 0.2,
          "Largest share of the money a hop may keep back: each hop must pass on at least (1 - max_decay) of "
          "what the previous hop carried.", looser="higher"),
    Param("max_dwell", duration, hours(2), "Longest the money may rest in each account between hops.",
          looser="higher", show=show_duration),
    min_amount_param("Ignore runs whose last hop carries less than this (units)."),
    require_loan_money_param(True, "Only follow money traced to a disbursement; false also follows large "
                                   "inflows of unknown origin when the tracer is set to trace them."),
)


def detect(rule, event, state):
    """Not implemented yet: finds nothing."""
    return ()
