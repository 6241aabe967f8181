"""Everything detection remembers, updated once per event before any rule looks at it.

Kinds only read this state (`detect(rule, event, state)` is a pure function of it), so rules can be swapped
at any time without losing what was learnt, and every rule sees the same picture of the same event.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

from ..events import Disbursement, Event, Transfer
from .graph import DEFAULT_LATENESS_MS, DEFAULT_WINDOW_MS, DUPLICATE, TOO_OLD, RollingGraph, sink_node
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


class DeviceIndex:
    """Recent disbursements by requesting device and IP (`device:<id>`, `ip:<addr>`), windowed like the graph."""

    def __init__(self, cap: int) -> None:
        self._uses: dict[str, list[DeviceUse]] = {}     # lists, not deques: most keys hold one or two uses
        self._expiry: list[tuple[int, int, str]] = []
        self._seq = 0
        self._cap = cap

    def add(self, d: Disbursement) -> None:
        use = DeviceUse(ts=d.ts, account=d.account, loan_id=d.loan_id, event_id=d.event_id, amount=d.amount)
        for key in device_keys(d):
            uses = self._uses.get(key)
            if uses is None:
                self._uses[key] = [use]
            else:
                uses.append(use)
                if len(uses) > self._cap:
                    del uses[0]
            self._seq += 1
            heapq.heappush(self._expiry, (d.ts, self._seq, key))

    def uses(self, key: str) -> tuple[DeviceUse, ...]:
        return tuple(self._uses.get(key, ()))

    def expire(self, cutoff: int) -> None:
        heap = self._expiry
        while heap and heap[0][0] < cutoff:
            _, _, key = heapq.heappop(heap)
            uses = self._uses.get(key)
            if uses is None:
                continue
            kept = [use for use in uses if use.ts >= cutoff]
            if not kept:
                del self._uses[key]
            elif len(kept) != len(uses):
                self._uses[key] = kept

    def __len__(self) -> int:
        return len(self._uses)


def device_keys(d: Disbursement) -> tuple[str, ...]:
    keys = []
    if d.device_id:
        keys.append(f"device:{d.device_id}")
    if d.ip:
        keys.append(f"ip:{d.ip}")
    return tuple(keys)


class DetectionState:
    """The rolling graph, the fund tracer and the device index, plus what the current event did to them."""

    def __init__(self, *, window_ms: int = DEFAULT_WINDOW_MS, lateness_ms: int = DEFAULT_LATENESS_MS,
                 tracer: TracerOptions | None = None, limits: SearchLimits | None = None) -> None:
        self.graph = RollingGraph(window_ms, lateness_ms)
        self.tracer = FundTracer(tracer)
        self.limits = limits or SearchLimits()
        self.devices = DeviceIndex(self.limits.device_cap)
        self.allocation: Allocation | None = None   # what the current transfer carried

    @property
    def window_ms(self) -> int:
        return self.graph.window_ms

    @property
    def watermark(self) -> int | None:
        return self.graph.watermark

    def apply(self, event: Event) -> str:
        """Record the event everywhere; returns the graph's verdict (accepted, late, too_old, duplicate)."""
        self.allocation = None
        verdict = self.graph.add(event)
        if verdict == TOO_OLD or verdict == DUPLICATE:
            return verdict
        cutoff = self.graph.cutoff
        if isinstance(event, Transfer):
            dst = sink_node(event)
            allocation = self.tracer.transfer(event, dst, external=event.channel != "p2p", cutoff=cutoff)
            self.allocation = allocation
            if allocation.pieces:
                loan_amount = allocation.loan_amount
                if loan_amount:
                    self.graph.annotate(event, loan=loan_amount, loans=allocation.loan_ids)
        else:
            self.tracer.disburse(event)
            self.devices.add(event)
        if cutoff is not None:
            self.tracer.expire(cutoff)
            self.devices.expire(cutoff)
        return verdict
