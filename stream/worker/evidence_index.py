"""The original bytes of the events in the detection window, so a warning leaves with the events it cites.

The handler records every event that reached the detector: event_id -> (where it was read, its bytes, its event
time), and for a disbursement also loan_id -> that entry. When the detector raises a warning, the sources of its
txn_ids and loan_ids are looked up here and published with it (header `fundflow.evidence`). Entries expire by
event time exactly when the detector's window forgets them (older than the watermark minus window and
lateness), so the index holds what the detector holds and no more. It is part of the worker's snapshot.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Iterable

from ..model.events import Disbursement, Event
from ..model.warning import MAX_LIST_ITEMS, EarlyWarning
from ..evidence.hashing import EventSource
from .deadletter import Origin


@dataclass
class EvidenceIndex:
    window_ms: int
    lateness_ms: int
    by_event: dict[str, EventSource] = field(default_factory=dict)
    by_loan: dict[str, str] = field(default_factory=dict)             # loan_id -> event_id of its disbursement
    _order: deque = field(default_factory=deque)                        # (ts, event_id), in arrival order
    expired: int = 0

    def __len__(self) -> int:
        return len(self.by_event)

    def record(self, event: Event, value: bytes | None, origin: Origin) -> None:
        if value is None or event.event_id in self.by_event:
            return             # a duplicate keeps the first copy's bytes: it is the one the detector counted
        self.by_event[event.event_id] = EventSource(event.event_id, origin.topic, origin.partition, origin.offset,
                                                    bytes(value), event.ts)
        self._order.append((event.ts, event.event_id))
        if isinstance(event, Disbursement) and event.loan_id:
            self.by_loan.setdefault(event.loan_id, event.event_id)

    def expire(self, watermark: int | None) -> None:
        """Forget what the window no longer holds. Arrival order follows event time (the aligner's order), so
        the oldest are at the front; a late event behind newer ones simply leaves a little later."""
        if watermark is None:
            return
        horizon = watermark - self.window_ms - self.lateness_ms
        order = self._order
        while order and order[0][0] < horizon:
            _, event_id = order.popleft()
            if self.by_event.pop(event_id, None) is not None:
                self.expired += 1
        # by_loan is keyed by loan id, which the expired entry does not name: pruned in one pass once it has
        # grown well past the live entries (amortised O(1) per event).
        if len(self.by_loan) > 2 * len(self.by_event) + 1024:
            self.by_loan = {loan: eid for loan, eid in self.by_loan.items() if eid in self.by_event}

    def sources_for(self, warning: EarlyWarning) -> tuple[EventSource, ...]:
        """The cited events found here: txn_ids first, then the disbursements of loan_ids, at most
        MAX_LIST_ITEMS of each (the warning's own caps), each event once."""
        found: dict[str, EventSource] = {}
        for event_id in _capped(warning.txn_ids):
            source = self.by_event.get(event_id)
            if source is not None:
                found.setdefault(event_id, source)
        for loan_id in _capped(warning.loan_ids):
            event_id = self.by_loan.get(loan_id)
            source = self.by_event.get(event_id) if event_id is not None else None
            if source is not None:
                found.setdefault(source.event_id, source)
        return tuple(found.values())

    def export(self) -> tuple:
        return (self.window_ms, self.lateness_ms, self.by_event, self.by_loan, self._order)

    @classmethod
    def restore(cls, exported: tuple) -> "EvidenceIndex":
        window_ms, lateness_ms, by_event, by_loan, order = exported
        return cls(window_ms, lateness_ms, by_event, by_loan, order)


def _capped(ids: Iterable[str]) -> list[str]:
    return list(ids)[:MAX_LIST_ITEMS]
