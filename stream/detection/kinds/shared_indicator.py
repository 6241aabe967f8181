"""shared_indicator: an event touches an indicator other lenders listed: a loan requested from a device or IP, a
withdrawal to a bank card, a transfer sent from an IP that the members' feeds name (docs/sharing.md).

Why it matters: fraud rings reuse the same cards, devices and IPs at several lenders. A card another lender saw
loans cashed out to, or a device it saw farm loans from, is worth a look the first time it appears here, before
any local pattern has formed. The feeds hold keyed hashes only: the detector hashes the event's own identifier
and looks it up in the local indicator set, judging expiry by the event's time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ...indicators.normalize import TYPES
from ...model.events import Disbursement, Transfer
from ...model.money import format_minor
from ...rules.params import Param, count
from ..finding import Finding
from ..state import device_keys
from ._common import count_strength, evidence_score

if TYPE_CHECKING:
    from ...model.events import Event
    from ...rules.model import Rule
    from ..state import DetectionState

NAME = "shared_indicator"
TRIGGERS = frozenset({"disbursement", "transfer"})
STAGES = ("sent", "requested")

# event -> (indicator type, the field of the event that holds it)
EVENTS = {
    "disbursement_device": ("device", "device_id"),
    "disbursement_ip": ("ip", "ip"),
    "withdrawal_card": ("card", "dst"),
    "transfer_ip": ("ip", "ip"),
}


def _subset(known: tuple[str, ...], what: str):
    def parse(value: Any, lists: Any = None) -> frozenset[str]:
        from ...rules.params import string_set
        items = string_set(value, lists)
        unknown = sorted(items - set(known))
        if unknown:
            raise ValueError(f"unknown {what} {', '.join(map(repr, unknown))}; known: {', '.join(known)}")
        if not items:
            raise ValueError(f"at least one {what} is needed (known: {', '.join(known)})")
        return items
    return parse


def _show(items: frozenset[str]) -> list[str]:
    return sorted(items)


PARAMS = (
    Param("types", _subset(TYPES, "indicator type"), frozenset({"card", "device", "ip"}),
          "Indicator types that count: card, device, ip (phone and national_id are carried by feeds and read by "
          "`listed()`).", show=_show),
    Param("min_sources", count(1), 1, "Fewest distinct institutions that must list the indicator.",
          looser="lower"),
    Param("events", _subset(tuple(EVENTS), "event"), frozenset(EVENTS),
          "Which events are looked up: disbursement_device (a loan requested from a listed device), "
          "disbursement_ip (from a listed IP), withdrawal_card (a withdrawal to a listed card), transfer_ip "
          "(a transfer sent from a listed IP).", show=_show),
)


def _looked_up(event: "Event", events: frozenset[str], types: frozenset[str]) -> list[tuple[str, str, Any]]:
    """(event name, indicator type, event field, value) the rule looks up on this event."""
    if isinstance(event, Disbursement):
        names = ("disbursement_device", "disbursement_ip")
    elif event.channel == "withdrawal":
        names = ("withdrawal_card", "transfer_ip")
    else:
        names = ("transfer_ip",)
    looked = []
    for name in names:
        kind, field = EVENTS[name]
        if name in events and kind in types:
            value = getattr(event, field)
            if value:
                looked.append((name, kind, field, value))
    return looked


def prefilter(rule: "Rule", stage: str):
    """Without an indicator set there is nothing to look up."""
    def test(event: "Event", state: "DetectionState") -> bool:
        return bool(state.indicators)
    return test


def detect(rule: "Rule", event: "Event", state: "DetectionState") -> list[Finding]:
    """On a transfer at its sender; on a disbursement at its first requester key (the device, else the IP), once."""
    indicators = state.indicators
    if not indicators:
        return []
    if isinstance(event, Disbursement):
        keys = device_keys(event)
        if not keys or state.requester != keys[0]:
            return []
        account, loan_ids = event.account, (event.loan_id,)
    elif isinstance(event, Transfer):
        account = event.src
        loan_ids = state.allocation.loan_ids if state.allocation is not None else ()
    else:
        return []
    params = rule.params
    matches = []
    for name, kind, field, value in _looked_up(event, params["events"], params["types"]):
        match = indicators.lookup(kind, value, event.ts)
        if match is not None and len(match.sources) >= params["min_sources"]:
            matches.append((name, field, match))
    if not matches:
        return []
    sources = sorted({source for _, _, match in matches for source in match.sources})
    what = ", ".join(f"{_WORDS[name]} listed by {', '.join(match.sources)} "
                     f"({', '.join(sorted({listing.reason for listing in match.listings}))})"
                     for name, _, match in matches)
    verb = (f"loan {event.loan_id} to {account}" if isinstance(event, Disbursement)
            else f"{event.channel} {event.event_id} from {account}")
    return [Finding(
        subject=account, accounts=(account,), loan_ids=tuple(loan_ids), txn_ids=(event.event_id,),
        amount=event.amount, first_ts=event.ts,
        score=evidence_score(count_strength(max(len(match.sources) for _, _, match in matches),
                                            params["min_sources"])),
        summary=f"{verb} ({format_minor(event.amount)} {event.currency}): {what}",
        evidence={"event": matches[0][0], "sources": sources,
                  "indicators": [dict(match.evidence(field), event=name) for name, field, match in matches]},
    )]


_WORDS = {"disbursement_device": "requested from a device", "disbursement_ip": "requested from an IP",
          "withdrawal_card": "to a card", "transfer_ip": "sent from an IP"}
