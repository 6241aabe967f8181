"""rapid_cashout: most of a loan reaches cash-out sinks (withdrawals to cards, cash-like merchants) soon after
it is disbursed, directly or through a few accounts.

Why it matters: consumer credit that is cashed out within hours is rarely spent on what it was lent for; it is
the signature of loan fraud and of "loan agents" who take a cut. A loan spent at once on an ordinary purchase
(an electronics shop, MCC 5732) is not a cash-out: only the channels and merchant categories listed as sinks count.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...model.events import Transfer
from ...model.money import format_minor
from ..finding import Finding
from ._common import (CASH_LIKE_MCCS, Param, count, evidence_score, format_elapsed, hours, min_amount_param,
                      ordered_unique, percent, quickness, ratio, show_set, strength, string_set, within_param)

if TYPE_CHECKING:
    from ...model.events import Event
    from ...rules.model import Rule
    from ..state import DetectionState

NAME = "rapid_cashout"
TRIGGERS = frozenset({"transfer"})
STAGES = ("exited",)
REPORTS_LOAN = True      # every finding is about one loan (Finding.loan)

PARAMS = (
    within_param(hours(2), "Count only money that reached a sink within this long after the disbursement."),
    Param("min_ratio", ratio, 0.7, "Share of the disbursed amount that must reach sinks (0..1).", looser="lower"),
    Param("max_hops", count(1, 10), 3,
          "Most transfers from the borrower's account to the sink, the last one included (1 = the borrower "
          "withdrew it directly).", looser="higher"),
    min_amount_param("Ignore loans smaller than this (units)."),
    Param("min_exits", count(1, 100), 1,
          "Fewest separate transfers into sinks that carry the loan's money: 2 or more is a cash-out split into "
          "pieces, which one ordinary withdrawal that happens to spend the loan is not.", looser="lower",
          versioned_at_default=False),
    Param("sinks_channels", string_set, frozenset({"withdrawal"}),
          "Transfer channels whose destination is a cash-out sink (money leaves the ledger as cash).",
          show=show_set),
    Param("sinks_merchant_categories", string_set, CASH_LIKE_MCCS,
          "Merchant categories (ISO 18245 MCC) of `merchant` payments that count as cash-out: a list or the name "
          "of a shared list. Default: 6010, 6011, 6051, 6540, 7995, 4829.", show=show_set),
)


def is_sink(channel: str, merchant_category: str | None, params) -> bool:
    if channel in params["sinks_channels"]:
        return True
    return channel == "merchant" and merchant_category in params["sinks_merchant_categories"]


def channels(rule: "Rule") -> frozenset[str]:
    """Sink channels, and merchant payments when some merchant categories count as sinks."""
    params = rule.params
    return params["sinks_channels"] | ({"merchant"} if params["sinks_merchant_categories"] else set())


def prefilter(rule: "Rule", stage: str):
    params = rule.params

    def test(event: Transfer, state: "DetectionState") -> bool:
        return state.loan_id is not None and is_sink(event.channel, event.merchant_category, params)
    return test


def detect(rule: "Rule", event: "Event", state: "DetectionState") -> list[Finding]:
    """At the borrower, when pieces of one of its loans left the ledger with a transfer into a sink: the share of
    that loan that reached sinks in time."""
    params = rule.params
    if state.loan_id is None or not isinstance(event, Transfer):
        return []
    if not is_sink(event.channel, event.merchant_category, params):
        return []
    within, max_hops, min_ratio = params["within"], params["max_hops"], params["min_ratio"]
    findings = []
    for loan_id in (state.loan_id,):
        record = state.tracer.loan(loan_id)
        if record is None:
            continue
        loan = record.disbursement
        if loan.amount < params["min_amount"]:
            continue
        hits = [exit_ for exit_ in record.exits
                if exit_.piece.hops <= max_hops and exit_.piece.path[-1].ts - loan.ts <= within
                and is_sink(exit_.channel, exit_.merchant_category, params)]
        if not any(exit_.piece.path[-1].txn_id == event.event_id for exit_ in hits):
            continue    # this transfer is too late or too far for this loan: it completes nothing
        reached = sum(exit_.piece.amount for exit_ in hits)
        share = reached / loan.amount
        if share < min_ratio or len({exit_.piece.path[-1].txn_id for exit_ in hits}) < params["min_exits"]:
            continue
        hits.sort(key=lambda exit_: (exit_.piece.path[-1].ts, exit_.piece.path[-1].txn_id))
        elapsed = max(exit_.piece.path[-1].ts for exit_ in hits) - loan.ts
        hops = max(exit_.piece.hops for exit_ in hits)
        paths = ordered_unique(exit_.piece.accounts for exit_ in hits)
        hop_txns = sorted({(hop.ts, hop.txn_id) for exit_ in hits for hop in exit_.piece.path})
        txn_ids = ordered_unique([loan.event_id] + [txn for _, txn in hop_txns])
        accounts = ordered_unique(account for path in paths for account in path[:-1])
        sinks = ordered_unique(path[-1] for path in paths)
        hop_word = "hop" if hops == 1 else "hops"
        findings.append(Finding(
            subject=loan_id, accounts=accounts, loan_ids=(loan_id,), txn_ids=txn_ids,
            amount=reached, first_ts=loan.ts,
            score=evidence_score(strength(share, min_ratio, 1.0), quickness(elapsed, within)),
            summary=(f"{percent(share)} of loan {loan_id} ({format_minor(loan.amount)} {loan.currency}) reached "
                     f"cash-out sinks within {format_elapsed(elapsed)} through {hops} {hop_word}"),
            evidence={"paths": [list(path) for path in paths], "hops": hops, "elapsed_s": elapsed // 1000,
                      "share": round(share, 4), "loan_amount": format_minor(loan.amount),
                      "sinks": list(sinks)},
            loan_subject=loan_id, loan=loan,
        ))
    return findings
