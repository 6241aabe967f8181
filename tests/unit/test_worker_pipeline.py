"""The worker pipeline without Kafka: parse -> align -> detect -> publish, generations, rebuild, flush."""

from __future__ import annotations

import asyncio
import json

from stream.model.warning import EarlyWarning, make_warning_id
from stream.worker.alignment import EventTimeAligner
from stream.worker.deadletter import Origin
from stream.worker.handler import MessageHandler, Outcome
from stream.worker.pipeline import Pipeline

BASE = 1_772_446_500_000


class ThirdTransferDetector:
    """Warns when an account receives its 3rd transfer; records the order events reached it."""

    def __init__(self) -> None:
        self.watermark = None
        self.seen: list[str] = []
        self.received: dict[str, int] = {}
        self.rules = "v1"

    def replace_rules(self, rules) -> None:
        self.rules = rules

    def process(self, event, detected_at=None):
        self.seen.append(event.event_id)
        self.watermark = max(self.watermark or event.ts, event.ts)
        if event.type != "transfer":
            return []
        self.received[event.dst] = self.received.get(event.dst, 0) + 1
        if self.received[event.dst] != 3:
            return []
        return [EarlyWarning(warning_id=make_warning_id("third", self.rules, event.dst), rule_id="third",
                             rule_version=self.rules, kind="fan_in", severity="high", score=1.0, subject=event.dst,
                             accounts=(event.dst,), loan_ids=(), txn_ids=(event.event_id,), amount=event.amount,
                             currency="CNY", first_ts=event.ts, event_ts=event.ts, detected_at=event.ts, summary="s")]


class Clock:
    def __init__(self) -> None:
        self.now = 0

    def __call__(self) -> int:
        return self.now


def transfer(event_id: str, ts: int, dst: str = "B") -> bytes:
    return json.dumps({"type": "transfer", "event_id": event_id, "ts": BASE + ts, "src": "A", "dst": dst,
                       "amount": "1.00"}).encode()


def disbursement(event_id: str, ts: int) -> bytes:
    return json.dumps({"type": "disbursement", "event_id": event_id, "ts": BASE + ts, "loan_id": "L",
                       "account": "A", "amount": "9.00"}).encode()


def make(detector=None, clock=None):
    detector = detector or ThirdTransferDetector()
    clock = clock or Clock()
    published: list[Outcome] = []

    async def publish(outcome: Outcome, wait: bool = True) -> list:
        published.append(outcome)
        return []

    pipeline = Pipeline(MessageHandler(detector), publish=publish,
                        make_aligner=lambda: EventTimeAligner(idle_after_ms=1000, clock=clock))
    return pipeline, detector, published, clock


async def opened(pipeline: Pipeline, detector) -> None:
    generation = pipeline.begin_generation()
    assert await pipeline.rebuild(generation, lambda: detector, [])


def test_events_from_two_topics_reach_the_detector_in_event_time_order():
    async def run():
        pipeline, detector, published, _ = make()
        await opened(pipeline, detector)
        xfer, disb = Origin("t", 0, 0), Origin("d", 0, 0)
        await pipeline.offer(disbursement("d0", 0), key=b"A", origin=disb)
        for n, ts in enumerate((10, 20, 30)):       # transfers run ahead of the disbursements
            await pipeline.offer(transfer(f"t{ts}", ts), key=b"A", origin=xfer)
        assert detector.seen == ["d0"]
        await pipeline.offer(disbursement("d25", 25), key=b"A", origin=disb)
        assert detector.seen == ["d0", "t10", "t20", "d25"]
        await pipeline.offer(b"{bad", key=b"A", origin=Origin("t", 0, 9))      # dead-lettered at once
        assert published[-1].dead_letter is not None and published[-1].dead_letter.reason == "malformed_json"
        assert pipeline.pending == 1
        assert await pipeline.flush() == 1
        assert detector.seen[-1] == "t30"
        assert [w.subject for o in published for w in o.warnings] == ["B"]
    asyncio.run(run())


def test_idle_source_is_released_by_the_timer_tick():
    async def run():
        pipeline, detector, _, clock = make()
        await opened(pipeline, detector)
        await pipeline.offer(disbursement("d0", 0), key=b"A", origin=Origin("d", 0, 0))
        await pipeline.offer(transfer("t5", 5), key=b"A", origin=Origin("t", 0, 0))
        assert detector.seen == ["d0"]
        await pipeline.tick()
        assert detector.seen == ["d0"]
        clock.now = 1500
        await pipeline.tick()
        assert detector.seen == ["d0", "t5"]
    asyncio.run(run())


class SlowDetector(ThirdTransferDetector):
    """Takes 400 ms of the aligner's clock per event: a batch longer to detect than the idle wait."""

    def __init__(self, clock: Clock) -> None:
        super().__init__()
        self.clock = clock

    def process(self, event, detected_at=None):
        self.clock.now += 400
        return super().process(event, detected_at)


def test_time_spent_detecting_a_batch_does_not_make_its_sources_look_idle():
    """Regression: a batch that took longer than idle_after to detect made its own partitions look idle at the
    next tick, which released a disbursement ahead of transfers that precede it in event time."""
    async def run():
        clock = Clock()
        detector = SlowDetector(clock)
        pipeline, _, _, _ = make(detector, clock)       # idle_after 1000 ms
        await opened(pipeline, detector)
        xfer, disb = ("t", 0), ("d", 0)
        await pipeline.offer_batch([(disbursement("d100", 100), b"A", Origin(*disb, 0), ()),
                                    *((transfer(f"t{ts}", ts), b"A", Origin(*xfer, n), ())
                                      for n, ts in enumerate((1, 2, 3)))])
        assert detector.seen == ["t1", "t2", "t3"] and clock.now == 1200      # d100 held: t is behind it
        await pipeline.tick()
        assert detector.seen == ["t1", "t2", "t3"]       # t was read until the batch was done, not idle
        await pipeline.offer_batch([(transfer("t50", 50), b"A", Origin(*xfer, 3), ())])
        assert detector.seen == ["t1", "t2", "t3", "t50"]
    asyncio.run(run())


def test_input_waits_for_the_rebuild_and_a_revoked_generation_drops_its_waiters():
    async def run():
        pipeline, detector, published, _ = make()
        waiting = asyncio.ensure_future(pipeline.offer(transfer("t1", 1), key=b"A", origin=Origin("t", 0, 5)))
        await asyncio.sleep(0.01)
        assert not waiting.done() and detector.seen == []
        pipeline.begin_generation()                # revoked while waiting: dropped, the next rebuild has it
        await asyncio.wait_for(waiting, 1)
        assert detector.seen == [] and published == []

        generation = pipeline.begin_generation()
        late = asyncio.ensure_future(pipeline.offer(transfer("t9", 9), key=b"A", origin=Origin("t", 0, 9)))
        fresh = ThirdTransferDetector()
        history = [(transfer(f"h{n}", n), b"A", Origin("t", 0, n), ()) for n in range(3)]
        history.insert(1, (b"{bad", b"A", Origin("t", 0, 99), ()))           # dead-lettered the first time
        assert await pipeline.rebuild(generation, lambda: fresh, history)
        await asyncio.wait_for(late, 1)
        assert pipeline.handler.detector is fresh and pipeline.rebuilt_events == 3
        assert fresh.seen == ["h0", "h1", "h2", "t9"]      # history first, then the input that waited
        assert [w.subject for o in published for w in o.warnings] == ["B"]     # the replay re-publishes
        assert not any(o.dead_letter for o in published), "a replay never dead-letters twice"
    asyncio.run(run())


def test_rebuild_of_a_stale_generation_does_nothing():
    async def run():
        pipeline, detector, _, _ = make()
        stale = pipeline.begin_generation()
        pipeline.begin_generation()
        assert not await pipeline.rebuild(stale, ThirdTransferDetector, [])
        assert not pipeline.is_open and pipeline.handler.detector is detector
    asyncio.run(run())


def test_replace_rules_reaches_the_running_detector():
    async def run():
        pipeline, detector, _, _ = make()
        await opened(pipeline, detector)
        pipeline.replace_rules("v2")
        assert detector.rules == "v2"
    asyncio.run(run())


def test_a_partition_read_ahead_of_the_others_is_not_refused_as_absurdly_early():
    async def run():
        pipeline, detector, published, _ = make()
        await opened(pipeline, detector)
        hour = 3_600_000
        await pipeline.offer(disbursement("d0", 0), key=b"A", origin=Origin("d", 0, 0))
        for n, ts in enumerate((1, 20 * hour, 40 * hour, 60 * hour)):     # each step < 1 day, total > 2 days
            await pipeline.offer(transfer(f"t{n}", ts), key=b"A", origin=Origin("t", 0, n))
        assert detector.watermark == BASE                  # the aligner holds the transfers back
        assert not any(o.dead_letter for o in published)
        assert pipeline.pending == 4
        await pipeline.offer(transfer("t-far", 90 * hour), key=b"A", origin=Origin("t", 0, 9))
        assert not any(o.dead_letter for o in published)   # held: a wrong timestamp or a real jump?
        assert pipeline.jump_guard.holding == 1
        await pipeline.offer(transfer("t-next", 61 * hour), key=b"A", origin=Origin("t", 0, 10))
        letters = [o.dead_letter for o in published if o.dead_letter]
        assert [(l.origin.offset, l.reason) for l in letters] == [(9, "absurd_timestamp")]  # the stream went on
        assert "more than a day ahead" in letters[0].error
    asyncio.run(run())


def test_a_real_jump_in_event_time_is_confirmed_and_nothing_is_dead_lettered():
    async def run():
        pipeline, detector, published, _ = make()
        await opened(pipeline, detector)
        day = 86_400_000
        await pipeline.offer(transfer("t0", 0), key=b"A", origin=Origin("t", 0, 0))
        for n in range(1, 4):              # a quiet weekend, then traffic resumes
            await pipeline.offer(transfer(f"t{n}", 3 * day + n), key=b"A", origin=Origin("t", 0, n))
        assert not any(o.dead_letter for o in published)
        assert pipeline.jump_guard.holding == 0 and pipeline.jump_guard.jumps_confirmed == 1
        assert await pipeline.flush() >= 0
        assert detector.seen == ["t0", "t1", "t2", "t3"]
    asyncio.run(run())


def test_events_left_behind_by_a_confirmed_jump_are_dead_lettered_as_too_old_not_dropped():
    """Regression: after three far-ahead events confirmed a jump, events at the old time reached the detector,
    were older than its window and vanished without a dead letter or a count."""
    from stream.detection.detector import Detector
    from stream.rules.model import RuleSet

    async def run():
        detector = Detector(RuleSet(()), window_ms=3_600_000, lateness_ms=60_000)
        pipeline, _, published, _ = make(detector)
        await opened(pipeline, detector)
        day = 86_400_000
        await pipeline.offer(transfer("t0", 0), key=b"A", origin=Origin("t", 0, 0))
        for n in range(1, 4):
            await pipeline.offer(transfer(f"t{n}", 3 * day + n), key=b"A", origin=Origin("t", 0, n))
        await pipeline.offer(transfer("late", 10), key=b"A", origin=Origin("t", 0, 4))
        await pipeline.flush()
        letters = [o.dead_letter for o in published if o.dead_letter is not None]
        assert [(d.reason, d.origin.offset) for d in letters] == [("too_old", 4)]
        assert "older than the window" in letters[0].error and pipeline.handler.refused == {"too_old": 1}
    asyncio.run(run())


def test_the_record_timestamp_reaches_the_detector_as_the_detection_time():
    """detected_at is the Kafka timestamp of the completing record, a part of the log: a rebuild that replays
    the log re-emits byte-identical warnings (the wall clock would differ at every replay)."""
    class StampingDetector(ThirdTransferDetector):
        def process(self, event, detected_at=None):
            self.stamps = getattr(self, "stamps", []) + [detected_at]
            return super().process(event, detected_at)

    detector = StampingDetector()

    async def run():
        pipeline, _, _, _ = make(detector)
        await opened(pipeline, detector)
        for n in range(3):
            await pipeline.offer(transfer(f"t{n}", n), key=b"A", origin=Origin("t", 0, n, BASE + 5_000 + n))
        await pipeline.offer(transfer("t9", 9), key=b"A", origin=Origin("t", 0, 9))      # no timestamp known
        await pipeline.flush()
    asyncio.run(run())
    assert detector.stamps == [BASE + 5_000, BASE + 5_001, BASE + 5_002, None]


def test_no_snapshot_while_a_batch_waits_for_its_acknowledgements_and_positions_move_after_them():
    from stream.detection.detector import Detector
    from stream.rules.model import RuleSet

    async def run():
        release = asyncio.Event()

        async def slow_ack():
            await release.wait()

        async def publish(outcome, wait=True):
            return [slow_ack()] if outcome.warnings or outcome.dead_letter else []

        detector = Detector(RuleSet(()))
        pipeline = Pipeline(MessageHandler(detector), publish=publish,
                            make_aligner=lambda: EventTimeAligner(idle_after_ms=0, clock=lambda: 10_000))
        generation = pipeline.begin_generation()
        assert await pipeline.rebuild(generation, lambda: detector, [], positions={("t", 0): 0})
        await pipeline.offer(transfer("t0", 0), key=b"A", origin=Origin("t", 0, 0))
        assert pipeline.checkpoint()[1] == {("t", 0): 1}
        batch = asyncio.ensure_future(pipeline.offer(b"{bad", key=b"A", origin=Origin("t", 0, 1)))
        await asyncio.sleep(0.01)
        assert pipeline.checkpoint() is None           # its dead letter is not acknowledged yet
        release.set()
        await batch
        assert pipeline.checkpoint()[1] == {("t", 0): 2}
    asyncio.run(run())


def test_the_evidence_index_rides_in_the_snapshot_and_a_full_rebuild_refills_it():
    from stream.detection.detector import Detector
    from stream.rules.model import RuleSet
    from stream.worker.evidence_index import EvidenceIndex
    from stream.worker.pipeline import WorkerState

    async def publish(outcome, wait=True):
        return []

    def pipeline_with_index():
        handler = MessageHandler(Detector(RuleSet(())), evidence=EvidenceIndex(72 * 3_600_000, 300_000))
        return Pipeline(handler, publish=publish,
                        make_aligner=lambda: EventTimeAligner(idle_after_ms=0, clock=lambda: 10_000))

    async def run():
        first = pipeline_with_index()
        generation = first.begin_generation()
        assert await first.rebuild(generation, lambda: Detector(RuleSet(())), [], positions={("t", 0): 0})
        await first.offer(disbursement("d0", 0), key=b"A", origin=Origin("t", 0, 0))
        await first.offer(transfer("t1", 1000), key=b"A", origin=Origin("t", 0, 1))
        state, positions = first.checkpoint()
        assert isinstance(state, WorkerState) and state.evidence is not None
        second = pipeline_with_index()
        generation = second.begin_generation()
        assert await second.rebuild(generation, lambda: Detector(RuleSet(())), [], restored=state,
                                    positions=positions)
        assert set(second.handler.evidence.by_event) == {"d0", "t1"} and second.handler.evidence.by_loan == {"L": "d0"}
        assert second.handler.evidence.by_event["t1"].value == transfer("t1", 1000)
        third = pipeline_with_index()
        generation = third.begin_generation()
        history = [(disbursement("d0", 0), b"A", Origin("t", 0, 0), ())]
        assert await third.rebuild(generation, lambda: Detector(RuleSet(())), history)
        assert set(third.handler.evidence.by_event) == {"d0"}
    asyncio.run(run())


def test_a_snapshot_of_an_older_format_is_refused(tmp_path):
    """Format 1 had no evidence index, format 2 no identity links, format 3 kept each account's identifiers in a
    dict, formats 4 and 5 the evidence index's sources or the identity records as dataclasses, format 6 no edge times
    beside the graph, format 7 edge data as dicts, format 8 an expiry entry per windowed item and arrivals with their
    loan's fields copied: restoring any of them would run without them, or fail on the first account, source, hub,
    edge or arrival it reads."""
    import pytest
    from stream.worker import checkpoint

    compatibility = checkpoint.Compatibility.current("g", {"window": 1})
    for older in (1, 2, 3, 4, 5, 6, 7, 8):
        path = tmp_path / f"s{older}.snapshot"
        checkpoint.write_snapshot(path, ("state",), {("t", 0): 1}, compatibility, 5)
        path.write_bytes(path.read_bytes().replace(b'"format":9', b'"format":%d' % older))
        with pytest.raises(checkpoint.SnapshotRefused, match=f"format {older}, this worker reads 9"):
            checkpoint.read_snapshot(path, compatibility, {("t", 0)})
