"""The typologies fundflow detects, one module each; `KINDS` is the registry the rule loader validates against.

A kind is a name, its parameters (with defaults and docs), the event types that can complete it, the stages it
runs at, and a pure `detect(rule, event, state)` that searches only the new event's neighbourhood and returns
`Finding`s. A stage is where in an event's path the kind looks, and so whose state it may read:

- `sent`: at the transfer's sender (its edges, its lots, the pieces the transfer took);
- `received`: at the node the transfer lands on (its edges, and what the transfer carried: pieces, the sender's
  inflows and counterparty count);
- `exited`: at a loan's borrower, when pieces of the loan left the ledger (the loan's record);
- `requested`: at a device or IP key, when a loan was requested from it (its index);
- `linked`: at an identifier key (device, IP, configured field), when money of a loan requested from it left
  the ledger (its arrivals, `stream.detection.identity`).

Two optional declarations let the detector skip a rule that cannot find anything for the event in hand, before
calling `detect` (both are necessary conditions of a finding, never a change to what `detect` finds):

- `channels(rule)`: the transfer channels on which the rule can find anything (None: every channel). A transfer
  on any other channel does not reach the rule at all: the detector looks the rule list up by stage and channel.
- `prefilter(rule, stage)`: a test `(event, state) -> bool`, built once per rule set, that returns False only
  when `detect` would return nothing; O(1): the event, the message's context and the counters kept beside the
  graph (degrees, counterparty counts), never a scan. None: no test.

A kind without them is simply always called, as before.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Iterable, Mapping

from ...rules.params import Param

if TYPE_CHECKING:
    from ...model.events import Event
    from ...rules.model import Rule
    from ..finding import Finding
    from ..state import DetectionState


@dataclass(frozen=True)
class Kind:
    name: str
    doc: str
    params: tuple[Param, ...]
    triggers: frozenset[str]                     # event types that can complete the pattern
    stages: tuple[str, ...]                      # where it runs (see above), in this order
    detect: Callable[["Rule", "Event", "DetectionState"], Iterable["Finding"]]
    # Its findings carry the loan their money came from (`Finding.loan`): the rule loader lets a `where` read
    # `disbursement` on a transfer only for such kinds, since for the others it is always none.
    reports_loan: bool = False
    # Values its findings carry for a `where` to read as `finding.<name>`: name -> "boolean", "number" or "text".
    features: Mapping[str, str] = field(default_factory=dict)
    # See the module docstring: the channels a rule can fire on, and its O(1) test before `detect`.
    channels: Callable[["Rule"], frozenset[str] | None] | None = None
    prefilter: Callable[["Rule", str], Callable[["Event", "DetectionState"], bool] | None] | None = None


SENT, RECEIVED, EXITED, REQUESTED, LINKED = "sent", "received", "exited", "requested", "linked"
STAGES = (SENT, RECEIVED, EXITED, REQUESTED, LINKED)

KINDS: dict[str, Kind] = {}


def register(kind: Kind) -> Kind:
    if kind.name in KINDS:
        raise ValueError(f"kind {kind.name!r} registered twice")
    KINDS[kind.name] = kind
    return kind


def _register_builtin_kinds() -> None:
    """Every built-in typology, one module each; imported here so that `KINDS` is complete on import."""
    from . import (account_takeover, cycle, device_burst, fan_in, fan_out, gather_scatter, identity_ring, layering,
                   rapid_cashout, scatter_gather, shared_indicator)
    for module in (rapid_cashout, layering, fan_in, fan_out, scatter_gather, gather_scatter, cycle,
                   device_burst, shared_indicator, identity_ring, account_takeover):
        register(Kind(name=module.NAME, doc=(module.__doc__ or "").strip(), params=module.PARAMS,
                      triggers=module.TRIGGERS, stages=module.STAGES, detect=module.detect,
                      reports_loan=getattr(module, "REPORTS_LOAN", False),
                      features=getattr(module, "FEATURES", {}),
                      channels=getattr(module, "channels", None), prefilter=getattr(module, "prefilter", None)))


_register_builtin_kinds()
