"""The names a rule's `where` expression can read: `event`, `disbursement`, `transfer`, and `finding`, the
values a kind computes about what it found (`finding.device_is_new`; each kind lists its own in `FEATURES`).

Amounts are shown to analysts in units as `Decimal` (`disbursement.amount >= 1000`), never as minor units or
floats; times as epoch ms (`event.ts`). The fields are those the event contract defines (`view_fields`, from the
event dataclasses); extra input fields the parser kept are read explicitly, `extra(event, "app_version")`, so a
misspelt standard field can be refused when the rules load instead of silently reading None.
"""

from __future__ import annotations

import typing
from decimal import Decimal
from typing import Any, Mapping

from ..model.events import Disbursement, Event, Transfer
from ..model.money import minor_to_decimal

# The name under which the detector hands a `where` its indicator lookup (`listed(value)`): not an identifier, so
# no expression can read it directly. Absent when no indicators are loaded, and `listed` is then false.
LISTED = "@listed"


class EventView:
    """Read-only view of an event for expressions: the contract's fields by name, amount in units. Unknown names
    raise AttributeError (the loader refuses them before any event is seen)."""

    __slots__ = ("_event",)

    def __init__(self, event: Event) -> None:
        self._event = event

    @property
    def amount(self) -> Decimal:
        return minor_to_decimal(self._event.amount)

    def __getattr__(self, name: str) -> Any:
        event = self._event
        if name in event.__struct_fields__ and name != "extra":
            return getattr(event, name)
        if name == "type":
            return event.type
        raise AttributeError(f"{event.type} has no field {name!r}")

    def __repr__(self) -> str:
        return f"EventView({self._event!r})"


def view_fields(event_class: type) -> dict[str, Any]:
    """Every field a `where` reads on a view of `event_class`, with the type it has there.

    Taken from the event class itself (docs/architecture.md §4 is implemented there once), with the
    conversions `EventView` makes (`amount` in units, a Decimal) and `type`, so the loader checks expressions
    against exactly what the detector will hand them."""
    hints = typing.get_type_hints(event_class)
    seen: dict[str, Any] = {name: hints[name] for name in event_class.__struct_fields__ if name != "extra"}
    seen["type"] = type(event_class.type)
    for name, member in vars(EventView).items():
        if isinstance(member, property) and name in seen:
            seen[name] = typing.get_type_hints(member.fget)["return"]
    return seen


def extra_field(view: Any, name: Any) -> Any:
    """`extra(event, "app_version")`: an input field the event contract does not define but the parser kept;
    None when the event does not carry it (or has no such root)."""
    if not isinstance(view, EventView) or not isinstance(name, str):
        return None
    return view._event.extra.get(name)


class FindingView:
    """Read-only view of a finding's features for expressions (`finding.account_age_h`)."""

    __slots__ = ("_features",)

    def __init__(self, features: Mapping[str, Any]) -> None:
        self._features = features

    def __getattr__(self, name: str) -> Any:
        try:
            return self._features[name]
        except KeyError:
            raise AttributeError(f"this finding has no feature {name!r}") from None


def names_for(event: Event, disbursement: Disbursement | None = None,
              features: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Names for evaluating a `where` on `event`; `disbursement` is the loan the money came from, if known;
    `features` what the kind computed about the finding."""
    view = EventView(event)
    if isinstance(event, Disbursement):
        disbursement = event
    return {
        "event": view,
        "transfer": view if isinstance(event, Transfer) else None,
        "disbursement": EventView(disbursement) if disbursement is not None else None,
        "finding": FindingView(features) if features else None,
    }
