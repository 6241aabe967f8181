"""The worker's path from input message to published outcome: parse, align, detect, publish.

The input agent (batches of both input topics), a timer and the state rebuild all reach the detector through
one `Pipeline`, under one lock, so the detector sees a single ordered stream of events. Every event goes
through the `EventTimeAligner` (keyed by topic and partition) so the detector's input order follows event
time rather than fetch timing.

State belongs to an assignment *generation*: a rebalance starts a new one, drops the detector and the
held events, and keeps the gate closed until the state is rebuilt from the log (see `recovery`). A
message that was waiting at the gate when its generation ended is simply dropped: its offset is below
the committed offset the next rebuild reads up to, or it is fetched again, so it is processed either way.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Awaitable, Callable, Iterable, Sequence

from ..detection.jump_guard import JumpGuard, Verdict
from .alignment import EventTimeAligner
from .deadletter import Origin
from .evidence_index import EvidenceIndex
from .handler import Accepted, DetectorLike, MessageHandler, Outcome
from .metrics import FundflowMetrics
from .tuning import YIELD_EVERY

log = logging.getLogger(__name__)

class WorkerState(tuple):
    """What a snapshot holds: (the detector's exported state, the evidence index's exported state or None)."""

    @property
    def detector(self) -> object:
        return self[0]

    @property
    def evidence(self) -> object | None:
        return self[1]


Publish = Callable[..., Awaitable[object]]   # publish(outcome, wait=True) -> acks still pending (wait=False)
Message = tuple[bytes | None, bytes | None, Origin, tuple[tuple[str, bytes], ...]]   # value, key, origin, headers


class Pipeline:
    def __init__(self, handler: MessageHandler, *, publish: Publish,
                 make_aligner: Callable[[], EventTimeAligner], monotonic: Callable[[], float] = time.monotonic,
                 metrics: FundflowMetrics | None = None) -> None:
        self.handler = handler
        self.aligner: EventTimeAligner[Accepted] = make_aligner()
        self._make_aligner = make_aligner
        self._publish = publish
        self._monotonic = monotonic
        self._metrics = metrics
        self._lock = asyncio.Lock()
        self._gate = asyncio.Event()
        self.generation = 0
        self.rebuilt_events = 0          # events replayed by the last rebuild
        self._arrived_max_ts: int | None = None
        self.jump_guard: JumpGuard[Accepted] = JumpGuard()
        self._next_offset: dict[tuple[str, int], int] = {}   # per input partition: the next offset to take
        self._skip_below: dict[tuple[str, int], int] = {}    # live records a restored snapshot already holds
        self._unacknowledged = 0     # batches waiting for the broker to acknowledge what they published

    def arrived_watermark(self) -> int | None:
        """The newest event time accepted in this generation (or the detector's watermark, if newer)."""
        detector_watermark, arrived = self.handler.detector.watermark, self._arrived_max_ts
        if arrived is None or (detector_watermark is not None and detector_watermark > arrived):
            return detector_watermark
        return arrived

    @property
    def is_open(self) -> bool:
        """True when the state of the current assignment is rebuilt and live events are processed."""
        return self._gate.is_set()

    @property
    def pending(self) -> int:
        return len(self.aligner)

    # -- live input ---------------------------------------------------------------------------------------
    async def offer(self, value: bytes | None, *, key: bytes | None, origin: Origin,
                    headers: tuple[tuple[str, bytes], ...] = ()) -> None:
        """One input message: bad ones are dead-lettered now, good ones aligned then detected."""
        await self.offer_batch(((value, key, origin, headers),))

    async def offer_batch(self, messages: Sequence[Message]) -> None:
        """A batch of input messages from one agent, in log order. One pass under the lock, and the broker's
        acknowledgements of everything the batch published awaited together at the end: the outbox holds
        the batch's warnings before the agent takes the next batch."""
        arrived = self._monotonic()
        gate, generation = self._gate, self.generation
        await gate.wait()
        if generation != self.generation:
            return
        if self._skip_below:
            messages = [m for m in messages if m[2].offset >= self._skip_below.get((m[2].topic, m[2].partition), -1)]
        acks: list = []
        parsed_batch = []
        for value, key, origin, headers in messages:
            parsed = self.handler.parse(value, key=key, origin=origin, headers=headers, arrived=arrived)
            if isinstance(parsed, Outcome):
                acks.extend(await self._publish(parsed, wait=False) or ())
            else:
                parsed_batch.append(parsed)
        if parsed_batch:
            async with self._lock:
                if generation != self.generation:
                    return
                guard = self.jump_guard
                for parsed in parsed_batch:
                    if guard.passes(parsed.event.ts, self.arrived_watermark()):
                        self._align((parsed,))       # the common case, decided without building a verdict
                        continue
                    verdict = self._guard(parsed)
                    if verdict.refused:
                        await self._settle(verdict, acks)
                    else:
                        self._align(verdict.released)
                await self._drain(self.aligner.release(), acks)
                # Idle time counts from the end of the batch: the time spent detecting it is not silence.
                self.aligner.seen({(item.origin.topic, item.origin.partition) for item in parsed_batch})
        if acks:
            self._unacknowledged += 1
            try:
                await asyncio.gather(*acks)
            finally:
                self._unacknowledged -= 1
        # Taken only now that its outcomes are acknowledged: a snapshot in between still replays this batch.
        if generation == self.generation:
            for _, _, origin, _ in messages:
                tp = (origin.topic, origin.partition)
                if origin.offset >= self._next_offset.get(tp, -1):
                    self._next_offset[tp] = origin.offset + 1

    async def tick(self) -> None:
        """Release what idle sources no longer hold back (called by a short timer)."""
        if not self.is_open or not len(self.aligner):
            return
        async with self._lock:
            if self.is_open:
                await self._drain(self.aligner.release())

    async def flush(self) -> int:
        """Everything held goes through the detector and out (shutdown). Returns how many events."""
        async with self._lock:
            await self._settle(self.jump_guard.flush(self.arrived_watermark()))
            held = self.aligner.flush()
            await self._drain(held)
            return len(held)

    # -- assignment generations ---------------------------------------------------------------------------
    def begin_generation(self) -> int:
        """A rebalance: state of the previous assignment is void; live input waits for the next rebuild."""
        self.generation += 1
        old_gate, self._gate = self._gate, asyncio.Event()
        old_gate.set()               # wake waiters of the old generation so they drop their message
        return self.generation

    def replace_rules(self, rules: object) -> None:
        """Hot reload: the running detector takes the new rules (it compiles them first, then swaps)."""
        replace = getattr(self.handler.detector, "replace_rules", None)
        if replace is not None:
            replace(rules)

    def checkpoint(self) -> tuple[object, dict[tuple[str, int], int]] | None:
        """(detector state, positions) for a snapshot, or None when there is no state to save (not rebuilt, or a
        detector that cannot export). Call outside the lock: the detector only changes under it. A position is
        the first offset whose event has not reached the detector or whose outcomes are not acknowledged yet
        (a batch advances its positions after its acknowledgements): held events, events of a batch in flight
        and events not yet read are replayed on restore. None too while any batch waits for acknowledgements:
        the events of other partitions it detected are no longer held, and their warnings not yet confirmed."""
        export = getattr(self.handler.detector, "export_state", None)
        if not self.is_open or self._lock.locked() or self._unacknowledged or export is None:
            return None     # an event detected but not acknowledged yet would be neither replayed nor published
        positions = dict(self._next_offset)
        for item in [*self.aligner.held(), *self.jump_guard.held()]:
            tp = (item.origin.topic, item.origin.partition)
            positions[tp] = min(positions.get(tp, item.origin.offset), item.origin.offset)
        evidence = self.handler.evidence
        return WorkerState((export(), evidence.export() if evidence is not None else None)), positions

    async def rebuild(self, generation: int, make_detector: Callable[[], DetectorLike], history: Iterable[tuple[bytes | None,
                      bytes | None, Origin, tuple[tuple[str, bytes], ...]]],
                      sources: Iterable[tuple[str, int]] = (), *, restored: object | None = None,
                      positions: dict[tuple[str, int], int] | None = None) -> bool:
        """Swap in a fresh detector (built under the lock, so with the rules running now) and aligner, replay
        `history` through them, publishing warnings, and open the gate. History arrives merged by event time;
        records the parser refuses were dead-lettered before their offsets were committed and are skipped.
        False if a newer generation began meanwhile.

        `restored` is a snapshot's state (a `WorkerState`, or a bare detector state) to start from instead of an empty one; `positions`, per
        partition, the offset live input continues from (the committed offset, or a snapshot's position
        when the snapshot is ahead of it: live records below it are already in the state and are skipped)."""
        async with self._lock:
            if generation != self.generation:
                return False
            self.handler.detector = make_detector()
            evidence = self.handler.evidence
            if isinstance(restored, WorkerState):
                self.handler.detector.import_state(restored.detector)
                if evidence is not None:
                    self.handler.evidence = (EvidenceIndex.restore(restored.evidence) if restored.evidence is not None
                                             else EvidenceIndex(evidence.window_ms, evidence.lateness_ms))
            elif restored is not None:
                self.handler.detector.import_state(restored)
            if evidence is not None and restored is None:     # a full rebuild refills it from the replayed log
                self.handler.evidence = EvidenceIndex(evidence.window_ms, evidence.lateness_ms)
            self._next_offset = dict(positions or {})
            self._skip_below = dict(positions or {}) if restored is not None else {}
            self.aligner = self._make_aligner()
            self.jump_guard = JumpGuard()
            for source in sources:          # assigned partitions hold events back before their first one
                self.aligner.expect(source)
            replayed = 0
            self._arrived_max_ts = None
            acks: list = []
            for value, key, origin, headers in history:
                parsed = self.handler.parse_quietly(value, key=key, origin=origin, headers=headers)
                if parsed is None:
                    continue
                # The guard's and the detector's refusals are outcomes of detection, re-emitted like its
                # warnings (a refusal decided after its offset was committed would otherwise be lost).
                await self._settle(self._guard(parsed), acks)
                await self._drain(self.aligner.release(), acks)
                replayed += 1
                if replayed % YIELD_EVERY == 0:
                    await asyncio.sleep(0)     # let heartbeats and web requests run during a long replay
                if generation != self.generation:
                    return False
            await self._drain(self.aligner.release(), acks)
            if acks:
                await asyncio.gather(*acks)      # every replayed warning is in the outbox before live input
            self.rebuilt_events = replayed
            self._gate.set()
            return True

    # -- timestamps the stream has to confirm ---------------------------------------------------------------
    def _guard(self, item: Accepted) -> Verdict[Accepted]:
        return self.jump_guard.offer(item.event.ts, item.event.event_id, item, self.arrived_watermark())

    def _align(self, items: Iterable[Accepted]) -> None:
        for item in items:
            ts = item.event.ts
            self._arrived_max_ts = ts if self._arrived_max_ts is None else max(self._arrived_max_ts, ts)
            self.aligner.add((item.origin.topic, item.origin.partition), ts, item)

    async def _settle(self, verdict: Verdict[Accepted], acks: list | None = None) -> None:
        """Dead-letter what the stream contradicted; align what it accepted or confirmed."""
        for item, error in verdict.refused:
            pending = await self._publish(self.handler.refuse(item, error), wait=acks is None)
            if acks is not None:
                acks.extend(pending or ())
        self._align(verdict.released)

    # -- detection and publishing --------------------------------------------------------------------------
    async def _drain(self, items: Sequence[Accepted], acks: list | None = None) -> None:
        """Detect and publish; with `acks`, the broker acknowledgements are collected instead of awaited."""
        metrics = self._metrics
        detect = self.handler.detect
        arrivals: dict[float, int] = {}       # the events of one batch share their arrival time
        for item in items:
            outcome = detect(item)
            # Most events raise nothing and are refused by nothing: no record to send, so no publish call.
            if outcome.warnings or outcome.dead_letter is not None:
                if acks is None:
                    await self._publish(outcome)
                else:
                    acks.extend(await self._publish(outcome, wait=False) or ())
                if metrics is not None:
                    for warning in outcome.warnings:
                        metrics.warnings.labels(rule_id=warning.rule_id, severity=warning.severity).inc()
            if item.arrived:
                arrivals[item.arrived] = arrivals.get(item.arrived, 0) + 1
        if metrics is not None and arrivals:
            now = self._monotonic()
            for arrived, count in arrivals.items():
                metrics.processing_latency.observe(max(0.0, now - arrived), count)
