"""account_takeover: an established account borrows from a device or IP it never used in the window, and most of
the loan leaves the account soon after, by any channel.

Why it matters: a stolen login is worth a credit line. The thief borrows in the owner's name on their own phone
and moves the money out at once, usually to an account that spends it slowly, so no cash-out rule sees it. The
owner's history is the evidence: which devices and IPs the account used before (`stream.detection.identity`).
People do change phones; a rule can require both a new device and a new IP (`new: device_and_ip`), a minimum
account age, or filter on `finding.device_is_new`, `finding.ip_is_new`, `finding.account_age_h` in its `where`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...model.events import Transfer
from ...model.money import format_minor
from ...rules.params import choice
from ..finding import Finding
from ._common import (Param, channels_param, duration, evidence_score, format_elapsed, hours, min_amount_param,
                      ordered_unique, percent, quickness, ratio, show_duration, strength, within_param)

if TYPE_CHECKING:
    from ...model.events import Event
    from ...rules.model import Rule
    from ..state import DetectionState

NAME = "account_takeover"
TRIGGERS = frozenset({"transfer"})
STAGES = ("sent",)
REPORTS_LOAN = True
# What a `where` reads as `finding.<name>`, with its type.
FEATURES = {"device_is_new": "boolean", "ip_is_new": "boolean", "account_age_h": "number",
            "known_devices": "number", "known_ips": "number"}

PARAMS = (
    within_param(hours(2), "The loan's money must leave the account within this long after the disbursement."),
    Param("min_share", ratio, 0.7, "Share of the loan that must leave the borrower's account (0..1).",
          looser="lower"),
    Param("new", choice("device_or_ip", "device_and_ip", "device", "ip"), "device_or_ip",
          "What must be new to the account for the loan to count: its device, its IP, either or both."),
    Param("min_account_age", duration, hours(24),
          "The borrower must have been seen at least this long before the loan, within the window: a new "
          "account has no history to compare with (identity_ring and device_burst watch those).",
          looser="lower", show=show_duration),
    channels_param(frozenset({"p2p", "withdrawal", "merchant"}),
                   "Channels of the transfers that count as the money leaving."),
    min_amount_param("Ignore loans smaller than this (units)."),
)


def channels(rule: "Rule") -> frozenset[str]:
    return rule.params["channels"]


def prefilter(rule: "Rule", stage: str):
    """The exits of `detect` before it looks at the pieces: the transfer took traced money, and some loan is
    watched (requested from an identifier new to its account) at all."""
    def test(event: "Event", state: "DetectionState") -> bool:
        allocation = state.allocation
        return allocation is not None and bool(allocation.pieces) and bool(state.identities.watches)
    return test


def _is_new(watch, new: str) -> bool:
    if new == "device":
        return watch.device_is_new
    if new == "ip":
        return watch.ip_is_new
    if new == "device_and_ip":
        return watch.device_is_new and watch.ip_is_new
    return watch.device_is_new or watch.ip_is_new


def detect(rule: "Rule", event: "Event", state: "DetectionState") -> list[Finding]:
    """At the borrower, on a transfer that carries money of a loan from a new identifier: did this transfer take
    what left of that loan past `min_share` within `within`?"""
    allocation = state.allocation
    if allocation is None or not allocation.pieces or not isinstance(event, Transfer):
        return []
    params = rule.params
    channels = params["channels"]
    if event.channel not in channels:
        return []
    watches = state.identities.watches
    findings = []
    for loan_id in ordered_unique(piece.origin.id for piece in allocation.pieces
                                  if piece.hops == 1 and piece.origin.is_loan and piece.origin.account == event.src):
        watch = watches.get(loan_id)
        if watch is None or not _is_new(watch, params["new"]):
            continue
        loan = watch.disbursement
        if loan.amount < params["min_amount"] or watch.account_age < params["min_account_age"]:
            continue
        outflows = [o for o in watch.outflows if o.ts - loan.ts <= params["within"] and o.channel in channels]
        total = sum(o.amount for o in outflows)
        now = sum(o.amount for o in outflows if o.txn_id == event.event_id)
        needed = params["min_share"] * loan.amount
        if now == 0 or total < needed or total - now >= needed:
            continue        # not this transfer that crossed the share (or it did earlier)
        share = total / loan.amount
        elapsed = max(o.ts for o in outflows) - loan.ts
        what = " and ".join(name for name, new in (("device", watch.device_is_new), ("IP", watch.ip_is_new)) if new)
        destinations = ordered_unique(o.dst for o in outflows)
        findings.append(Finding(
            subject=loan_id, accounts=ordered_unique((loan.account, *(o.dst for o in outflows if o.channel == "p2p"))),
            loan_ids=(loan_id,), txn_ids=ordered_unique((loan.event_id, *(o.txn_id for o in outflows))),
            amount=total, first_ts=loan.ts,
            score=evidence_score(strength(share, params["min_share"], 1.0),
                                 quickness(elapsed, params["within"]),
                                 1.0 if watch.device_is_new and watch.ip_is_new else 0.0),
            summary=(f"{percent(share)} of loan {loan_id} ({format_minor(loan.amount)} {loan.currency}), requested "
                     f"from a {what} account {loan.account} had not used in the window (seen for "
                     f"{format_elapsed(watch.account_age)}), left it within {format_elapsed(elapsed)} to "
                     f"{', '.join(destinations[:3])}{'...' if len(destinations) > 3 else ''}"),
            evidence={"paths": [[loan.account, dst] for dst in destinations], "device": loan.device_id, "ip": loan.ip, "device_is_new": watch.device_is_new,
                      "ip_is_new": watch.ip_is_new, "account_age_s": watch.account_age // 1000,
                      "known_devices": watch.known_devices, "known_ips": watch.known_ips,
                      "share": round(share, 4), "elapsed_s": elapsed // 1000,
                      "loan_amount": format_minor(loan.amount), "destinations": list(destinations)},
            loan_subject=loan_id, loan=loan,
            features={"device_is_new": watch.device_is_new, "ip_is_new": watch.ip_is_new,
                      "account_age_h": watch.account_age // 3_600_000, "known_devices": watch.known_devices,
                      "known_ips": watch.known_ips},
        ))
    return findings

