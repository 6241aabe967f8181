"""layering: traced money hops through several accounts in quick succession, each hop passing on most of
what it received and holding it only briefly.

Why it matters: chains of pass-through accounts put distance between a loan and where it ends up. Ordinary
money rests in an account (it is spent or saved); laundered money moves on within minutes, almost whole.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...model.money import format_minor
from ..finding import Finding
from ..tracer import Hop, Lot
from ._common import (Param, count, count_strength, duration, evidence_score, format_elapsed, hours,
                      min_amount_param, ordered_unique, percent, quickness, ratio, require_loan_money_param,
                      show_duration, strength, within_param)

if TYPE_CHECKING:
    from ...model.events import Event
    from ...rules.model import Rule
    from ..state import DetectionState

NAME = "layering"
TRIGGERS = frozenset({"transfer"})
STAGES = ("sent",)
REPORTS_LOAN = True      # a run of hops of loan money names its loan (Finding.loan); a traced inflow has none

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



def fast_run(path: tuple[Hop, ...], within: int, max_dwell: int, max_decay: float) -> tuple[Hop, ...]:
    """The longest run of hops ending with the last one in which every hop passes on at least (1 - max_decay)
    of what the previous one carried, after resting at most `max_dwell`, all within `within`."""
    last = path[-1]
    start = len(path) - 1
    keep = 1.0 - max_decay
    while start > 0:
        before, after = path[start - 1], path[start]
        if (after.ts - before.ts > max_dwell or after.amount < keep * before.amount
                or last.ts - before.ts > within):
            break
        start -= 1
    return path[start:]


def prefilter(rule: "Rule", stage: str):
    """Layering follows traced money: a transfer that carried none has nothing to follow."""
    def test(event: "Event", state: "DetectionState") -> bool:
        allocation = state.allocation
        return allocation is not None and bool(allocation.pieces)
    return test


def detect(rule: "Rule", event: "Event", state: "DetectionState") -> list[Finding]:
    """On a transfer: does any money it carries complete a fast, nearly lossless run of `min_hops` hops?"""
    allocation = state.allocation
    if allocation is None or not allocation.pieces:
        return []
    params = rule.params
    min_hops = params["min_hops"]
    best: dict[str, tuple[tuple[Hop, ...], Lot]] = {}
    for piece in allocation.pieces:
        if piece.hops < min_hops or piece.amount < params["min_amount"]:
            continue
        if params["require_loan_money"] and not piece.origin.is_loan:
            continue
        run = fast_run(piece.path, params["within"], params["max_dwell"], params["max_decay"])
        if len(run) < min_hops:
            continue
        known = best.get(piece.origin.id)
        if known is None or (len(run), run[-1].amount) > (len(known[0]), known[0][-1].amount):
            best[piece.origin.id] = (run, piece)
    findings = []
    for origin_id in sorted(best):
        run, piece = best[origin_id]
        origin = piece.origin
        path = ordered_unique((run[0].src, *(hop.dst for hop in run)))
        accounts = path if event.channel == "p2p" else path[:-1]     # an external sink is not an account
        elapsed = run[-1].ts - run[0].ts
        kept = run[-1].amount / run[0].amount
        dwell = max((after.ts - before.ts for before, after in zip(run, run[1:])), default=0)
        what = f"loan {origin.id}" if origin.is_loan else f"inflow {origin.id}"
        txn_ids = ((origin.event_id,) if origin.is_loan else ()) + tuple(hop.txn_id for hop in run)
        findings.append(Finding(
            subject=origin.id, accounts=accounts, loan_ids=(origin.id,) if origin.is_loan else (),
            txn_ids=ordered_unique(txn_ids), amount=run[-1].amount,
            first_ts=origin.ts if origin.is_loan else run[0].ts,
            score=evidence_score(strength(kept, (1 - params["max_decay"]) ** (len(run) - 1), 1.0),
                                 count_strength(len(run), params["min_hops"]),
                                 quickness(dwell, params["max_dwell"])),
            summary=(f"{format_minor(run[-1].amount)} {event.currency} of {what} passed through {len(accounts)} "
                     f"accounts in {len(run)} hops within {format_elapsed(elapsed)}, keeping {percent(kept)}"),
            evidence={"paths": [list(path)], "hops": len(run), "elapsed_s": elapsed // 1000,
                      "kept": round(kept, 4), "max_dwell_s": dwell // 1000,
                      "origin_amount": format_minor(origin.amount)},
            loan_subject=origin.id if origin.is_loan else None,
            loan=origin.disbursement if origin.is_loan else None,
        ))
    return findings
