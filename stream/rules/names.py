"""The names a rule's `where` expression can read: `event`, `disbursement`, `transfer`, plus features.

Amounts are shown to analysts in units as `Decimal` (`disbursement.amount >= 1000`), never as minor units or
floats; times as epoch ms (`event.ts`); extra event fields by their own name (`event.app_version`).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Mapping

from ..model.events import Disbursement, Event, Transfer
from ..model.money import minor_to_decimal


class EventView:
    """Read-only view of an event for expressions: fields by name, amount in units, unknown names -> None
    (so `transfer.merchant_category == "6051"` is simply false on a p2p transfer)."""

    __slots__ = ("_event",)

    def __init__(self, event: Event) -> None:
        self._event = event

    @property
    def amount(self) -> Decimal:
        return minor_to_decimal(self._event.amount)

    def __getattr__(self, name: str) -> Any:
        event = self._event
        if name in event.__dataclass_fields__ and name != "extra":
            return getattr(event, name)
        if name == "type":
            return event.type
        return event.extra.get(name)

    def __repr__(self) -> str:
        return f"EventView({self._event!r})"


def names_for(event: Event, disbursement: Disbursement | None = None,
              features: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Names for evaluating a `where` on `event`; `disbursement` is the loan the money came from, if known."""
    view = EventView(event)
    if isinstance(event, Disbursement):
        disbursement = event
    return {
        "event": view,
        "transfer": view if isinstance(event, Transfer) else None,
        "disbursement": EventView(disbursement) if disbursement is not None else None,
        **(features or {}),
    }
