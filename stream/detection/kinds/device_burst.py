"""device_burst: several distinct accounts receive disbursements requested from one device (or one IP) within
a window.

Why it matters: one fraudster applying for loans in many names from one phone. A household may share a device,
so the default needs three distinct borrowers within six hours.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...model.events import Disbursement
from ...model.money import format_minor
from ...rules.params import choice
from ..finding import Finding
from ._common import (Param, count, count_strength, evidence_score, format_elapsed, hours, min_amount_param,
                      quickness, within_param)

if TYPE_CHECKING:
    from ...model.events import Event
    from ...rules.model import Rule
    from ..state import DetectionState

NAME = "device_burst"
TRIGGERS = frozenset({"disbursement"})
STAGES = ("requested",)

PARAMS = (
    Param("min_accounts", count(2), 3, "Fewest distinct borrower accounts sharing the device.", looser="lower"),
    within_param(hours(6), "All counted disbursements happen within this long of each other (ending now)."),
    Param("key", choice("device_id", "ip", "device_or_ip"), "device_id",
          "What identifies the requester: the device id, the IP, or either (two checks)."),
    min_amount_param("Ignore disbursements smaller than this (units)."),
)


def keys_for(event: Disbursement, key: str) -> list[str]:
    keys = []
    if key in ("device_id", "device_or_ip") and event.device_id:
        keys.append(f"device:{event.device_id}")
    if key in ("ip", "device_or_ip") and event.ip:
        keys.append(f"ip:{event.ip}")
    return keys


def prefilter(rule: "Rule", stage: str):
    """Not again once the rule fired for this loan at an earlier key; a loan below `min_amount` counts for
    nothing; only at a requester key the rule reads."""
    params = rule.params
    rule_id, min_amount, key = rule.id, params["min_amount"], params["key"]

    def test(event: Disbursement, state: "DetectionState") -> bool:
        return (rule_id not in state.fired and event.amount >= min_amount
                and state.requester in keys_for(event, key))
    return test


def detect(rule: "Rule", event: "Event", state: "DetectionState") -> list[Finding]:
    """At a device or IP key, on a loan requested from it: how many distinct borrowers got loans from it in the
    window? With `key: device_or_ip` the IP is looked at only when the device found nothing."""
    if not isinstance(event, Disbursement) or rule.id in state.fired:
        return []
    params = rule.params
    min_amount = params["min_amount"]
    if event.amount < min_amount:
        return []
    since = event.ts - params["within"]
    for requester in keys_for(event, params["key"]):
        if requester != state.requester:
            continue
        uses = sorted((use for use in state.devices.items(requester)
                       if since <= use.ts <= event.ts and use.amount >= min_amount),
                      key=lambda use: (use.ts, use.event_id))
        accounts = sorted({use.account for use in uses})
        if len(accounts) < params["min_accounts"]:
            continue
        total = sum(use.amount for use in uses)
        first_ts = uses[0].ts
        elapsed = event.ts - first_ts
        return [Finding(
            subject=requester, accounts=(event.account, *(a for a in accounts if a != event.account)),
            loan_ids=tuple(sorted({use.loan_id for use in uses})), txn_ids=tuple(use.event_id for use in uses),
            amount=total, first_ts=first_ts,
            score=evidence_score(count_strength(len(accounts), params["min_accounts"]),
                                 quickness(elapsed, params["within"])),
            summary=(f"{len(accounts)} accounts received {len(uses)} loans ({format_minor(total)} {event.currency}) "
                     f"requested from {requester} within {format_elapsed(elapsed)}"),
            evidence={"requester": requester, "accounts": len(accounts), "loans": len(uses),
                      "elapsed_s": elapsed // 1000},
        )]
    return []
