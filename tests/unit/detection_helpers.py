"""Builders shared by the detection tests: events at readable times, rules built directly from the dataclasses."""

from __future__ import annotations

from typing import Any

from stream.errors import EventError
from stream.detection.detector import Detector
from stream.detection.kinds import KINDS
from stream.model.events import Disbursement, Transfer
from stream.rules.model import AllowList, Cooldown, Rule, RuleSet
from stream.rules.params import apply_params

T0 = 1_772_445_600_000          # 2026-03-02T10:00:00Z
MIN = 60_000
HOUR = 60 * MIN


def at(minutes: float) -> int:
    return T0 + int(minutes * MIN)


def disb(event_id: str, account: str, amount_units: float, minutes: float = 0, *, loan: str | None = None,
         device: str | None = None, ip: str | None = None, product: str | None = None) -> Disbursement:
    return Disbursement(event_id=event_id, ts=at(minutes), loan_id=loan or f"L-{event_id}", account=account,
                        amount=round(amount_units * 100), device_id=device, ip=ip, product=product)


def xfer(event_id: str, src: str, dst: str, amount_units: float, minutes: float = 0, *, channel: str = "p2p",
         mcc: str | None = None) -> Transfer:
    return Transfer(event_id=event_id, ts=at(minutes), src=src, dst=dst, amount=round(amount_units * 100),
                    channel=channel, merchant_category=mcc)


def rule(kind: str, rule_id: str | None = None, *, params: dict[str, Any] | None = None,
         cooldown: Cooldown | None = None, allow: AllowList | None = None, where=None, severity: str = "high",
         enabled: bool = True) -> Rule:
    """A compiled rule with the kind's defaults, `params` given as analysts write them (parsed by the specs)."""
    values, problems = apply_params(KINDS[kind].params, params or {}, _lists)
    assert not problems, problems
    return Rule(id=rule_id or kind.replace("_", "-"), kind=kind, desc=f"test {kind}", params=values,
                severity=severity, version="1", where=where, cooldown=cooldown or Cooldown(),
                notify=("pager",), enabled=enabled, allow=allow or AllowList())


def _lists(name: str) -> tuple[str, ...]:
    lists = {"cash_mccs": ("6011", "6051")}
    return lists[name]


def detector(*rules: Rule, **options: Any) -> Detector:
    return Detector(RuleSet(tuple(rules)), **options)


def run(det: Detector, events, refused: list | None = None) -> list:
    """The warnings of `events`; events the detector refuses (too old) go to `refused` (an error if not given)."""
    out = []
    for event in events:
        try:
            out.extend(det.process(event))
        except EventError as exc:
            if refused is None:
                raise
            refused.append((event.event_id, exc.reason))
    return out
