"""rapid_cashout: most of a loan reaches cash-out sinks (withdrawals to cards, cash-like merchants) soon after
it is disbursed, directly or through a few accounts.

Why it matters: consumer credit that is cashed out within hours is rarely spent on what it was lent for; it is
the signature of loan fraud and of "loan agents" who take a cut. A loan spent at once on an ordinary purchase
(an electronics shop, MCC 5732) is not a cash-out: only the channels and merchant categories listed as sinks count.
"""

from __future__ import annotations

from ._common import (CASH_LIKE_MCCS, Param, count, hours, min_amount_param, ratio, show_set, string_set,
                      within_param)

NAME = "rapid_cashout"
TRIGGERS = frozenset({"transfer"})

PARAMS = (
    within_param(hours(2), "Count only money that reached a sink within this long after the disbursement."),
    Param("min_ratio", ratio, 0.7, "Share of the disbursed amount that must reach sinks (0..1).", looser="lower"),
    Param("max_hops", count(1, 10), 3,
          "Most transfers from the borrower's account to the sink, the last one included (1 = the borrower "
          "withdrew it directly).", looser="higher"),
    min_amount_param("Ignore loans smaller than this (units)."),
    Param("sinks_channels", string_set, frozenset({"withdrawal"}),
          "Transfer channels whose destination is a cash-out sink (money leaves the ledger as cash).",
          show=show_set),
    Param("sinks_merchant_categories", string_set, CASH_LIKE_MCCS,
          "Merchant categories (ISO 18245 MCC) of `merchant` payments that count as cash-out: a list or the name "
          "of a shared list. Default: 6010, 6011, 6051, 6540, 7995, 4829.", show=show_set),
)


def detect(rule, event, state):
    """Not implemented yet: finds nothing."""
    return ()
