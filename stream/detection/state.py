"""What one partition of detection remembers, and the context of the message it is handling.

A partition owns a set of keys (accounts, external sinks, devices and IPs, cooldown keys) and holds only their
state: the graph edges touching its accounts, their lots, the records of loans they borrowed, the device index
of its devices and IPs, and the cooldowns of its keys. The Detector routes each message (an event, or a hop one
event sends to another key) to the partition of its key, brings the partition up to the shared event clock, and
runs the kinds of that stage. Kinds only read this state and the message (`detect(rule, event, state)` is a pure
function of them), and only for the message's own key: that is what makes the answer the same for any number
of partitions (docs/architecture.md, invariant 7).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from operator import attrgetter

from ..indicators.indicator_set import EMPTY as NO_INDICATORS
from ..indicators.indicator_set import IndicatorSet
from ..model.events import Disbursement
from .graph import EventClock, RollingGraph
from .identity import Arrival, Identities
from .windowed import WindowedLists
from .provenance import Inflow, Provenance
from .tracer import Allocation, FundTracer, TracerOptions


@dataclass(frozen=True, slots=True)
class SearchLimits:
    """Caps that keep one event's work bounded whatever the graph's size (docs/architecture.md, invariant 5)."""

    degree_cap: int = 1000      # neighbours scanned around the event's own accounts
    branch_cap: int = 50        # neighbours scanned per node one or more hops further away
    path_budget: int = 2000     # edges a path search (cycle) may visit per event
    device_cap: int = 1000      # disbursements remembered per device / IP

    def __post_init__(self) -> None:
        for name in ("degree_cap", "branch_cap", "path_budget", "device_cap"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)!r}")


@dataclass(frozen=True, slots=True)
class DeviceUse:
    ts: int
    account: str
    loan_id: str
    event_id: str
    amount: int


class DeviceIndex(WindowedLists[DeviceUse]):
    """Recent disbursements by requesting device and IP (`device:<id>`, `ip:<addr>`), windowed like the graph."""

    def __init__(self, cap: int) -> None:
        super().__init__(cap, attrgetter("ts"))

    def add_loan(self, key: str, d: Disbursement) -> None:
        self.add(key, DeviceUse(ts=d.ts, account=d.account, loan_id=d.loan_id, event_id=d.event_id,
                                amount=d.amount))


def device_keys(d: Disbursement) -> tuple[str, ...]:
    keys = []
    if d.device_id:
        keys.append(f"device:{d.device_id}")
    if d.ip:
        keys.append(f"ip:{d.ip}")
    return tuple(keys)


class DetectionState:
    """One partition's graph, tracer, device index, provenance, identity links and cooldowns, plus the message in
    hand."""

    def __init__(self, clock: EventClock, *, tracer: TracerOptions | None = None,
                 limits: SearchLimits | None = None, identity_fields: tuple[str, ...] = ()) -> None:
        self.clock = clock
        self.graph = RollingGraph(clock=clock)
        self.tracer = FundTracer(tracer)
        self.limits = limits or SearchLimits()
        self.devices = DeviceIndex(self.limits.device_cap)
        self.provenance = Provenance(clock.window_ms)
        self.identities = Identities(identity_fields)
        self.cooldowns: dict[tuple[str, str], int] = {}        # (rule id, key) -> event ts of the last warning
        self.cooldown_expiry: list[tuple[int, str, str, int]] = []  # (expires at, rule id, key, emitted at)
        self._caught_up_to: int | None = None
        # Views a kind builds over this state for its own searches (kind name -> its view), kept between events
        # and rebuilt from the state when missing: not part of a snapshot, and never a different answer.
        self.views: dict[str, object] = {}
        # The indicators the members' feeds list (read-only, shared by every partition; the Detector sets it).
        # Not part of a snapshot: a restored state is handed the running set.
        self.indicators: IndicatorSet = NO_INDICATORS
        # The message in hand (set by the Detector before the kinds of a stage run).
        self.stage = ""
        self.allocation: Allocation | None = None   # what the current transfer carried
        self.before: Inflow | None = None           # the sender's inflows when it sent the current transfer
        self.sender_counterparties = 0              # the sender's distinct counterparties then
        self.fired: frozenset[str] = frozenset()    # rules that found something at an earlier stage of this event
        self.loan_id: str | None = None             # exited: the loan whose pieces left
        self.requester: str | None = None           # requested: the device or IP key
        self.node: str | None = None                # received, linked: the node loan money arrived at
        self.arrived: tuple[Arrival, ...] = ()      # received, linked: the loan pieces that arrived there

    @property
    def window_ms(self) -> int:
        return self.clock.window_ms

    @property
    def watermark(self) -> int | None:
        return self.clock.watermark

    def window_start(self, since: int) -> int:
        """`since`, or the window's start when that is later: older state may not be trimmed yet everywhere."""
        cutoff = self.clock.cutoff
        return since if cutoff is None or since > cutoff else cutoff

    def catch_up(self) -> None:
        """Forget what left the window by the shared clock: done before every message this partition handles,
        so what a kind sees does not depend on how long the partition was idle."""
        cutoff = self.clock.cutoff
        if cutoff is None or cutoff == self._caught_up_to:
            return
        self._caught_up_to = cutoff
        self.graph.evict()
        self.tracer.expire(cutoff)
        self.devices.expire(cutoff)
        self.provenance.expire(cutoff)
        self.identities.expire(cutoff)
        heap = self.cooldown_expiry
        while heap and heap[0][0] < cutoff:
            _, rule_id, key, emitted_at = heapq.heappop(heap)
            if self.cooldowns.get((rule_id, key)) == emitted_at:
                del self.cooldowns[(rule_id, key)]

    def __getstate__(self) -> dict:
        """What a snapshot keeps: the state, not the message in hand (which would also drag provenance into
        pickle's recursion; see `Provenance.__getstate__`)."""
        state = {name: getattr(self, name) for name in ("clock", "graph", "tracer", "limits", "devices",
                                                          "provenance", "identities", "cooldowns", "cooldown_expiry",
                                                          "_caught_up_to")}
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.views = {}
        self.indicators = NO_INDICATORS
        self.enter("")

    def enter(self, stage: str, *, allocation: Allocation | None = None, before: Inflow | None = None,
              sender_counterparties: int = 0, fired: frozenset[str] = frozenset(), loan_id: str | None = None,
              requester: str | None = None, node: str | None = None, arrived: tuple[Arrival, ...] = ()) -> None:
        self.stage = stage
        self.allocation = allocation
        self.before = before
        self.sender_counterparties = sender_counterparties
        self.fired = fired
        self.loan_id = loan_id
        self.requester = requester
        self.node = node
        self.arrived = arrived
