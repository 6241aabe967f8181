"""Snapshots of the detection state: a detector restored from one continues exactly like the uninterrupted
run, and every unusable snapshot is refused with its reason (never loaded into wrong state)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from stream.detection.detector import Detector
from stream.model.events import parse_event
from stream.detection.rulebook import load_rules
from stream.simulate import simulate
from stream.simulate.params import SimParams
from stream.worker.alignment import EventTimeAligner
from stream.worker.checkpoint import (Compatibility, SnapshotLoader, SnapshotRefused, SnapshotWriter, read_snapshot,
                                      snapshot_path, write_snapshot)
from stream.worker.handler import MessageHandler
from stream.worker.pipeline import Pipeline
from stream.worker.recovery import StateRecovery

RULES = Path(__file__).resolve().parents[2] / "rules"
TPS = {("in", 0), ("in", 1)}
COMPAT = Compatibility.current("group-a", {"window": 259_200_000, "allowed_lateness": 300_000})


def ledger() -> list:
    events, _ = simulate(SimParams(seed=4, accounts=300, days=2, instances=2, background_per_day=800))
    return sorted((parse_event(json.dumps(e)) for e in events), key=lambda e: e.ts)


def run(detector: Detector, events) -> list[bytes]:
    return [w.to_json() for e in events for w in detector.process(e)]


def test_a_restored_detector_continues_byte_for_byte_like_the_uninterrupted_run(tmp_path):
    events, rules = ledger(), load_rules(RULES)
    whole = run(Detector(rules), events)
    first = Detector(rules)
    half = len(events) // 2
    before = run(first, events[:half])
    path = tmp_path / "s.snapshot"
    write_snapshot(path, first.export_state(), {("in", 0): 10, ("in", 1): 20}, COMPAT, 1_000)
    snapshot = read_snapshot(path, COMPAT, TPS)
    assert snapshot.positions == {("in", 0): 10, ("in", 1): 20} and snapshot.written_ms == 1_000
    second = Detector(rules)
    second.import_state(snapshot.state)
    after = run(second, events[half:])
    assert len(whole) > 20 and before + after == whole


def test_the_forked_writer_writes_a_snapshot_the_reader_accepts(tmp_path):
    detector = Detector(load_rules(RULES))
    run(detector, ledger()[:500])
    writer = SnapshotWriter(snapshot_path(tmp_path, "group/a b"), COMPAT)
    assert writer.start(detector.export_state(), {("in", 0): 1, ("in", 1): 2}, now_ms=5)
    writer.wait()
    assert writer.written == 1 and writer.failed == 0 and writer.last_size > 0 and writer.last_written_ms == 5
    assert read_snapshot(writer.path, COMPAT, TPS).positions == {("in", 0): 1, ("in", 1): 2}
    assert writer.path.name == "group_a_b.snapshot"


@pytest.fixture
def written(tmp_path) -> Path:
    path = tmp_path / "s.snapshot"
    write_snapshot(path, ("state", {"k": 1}), {("in", 0): 1, ("in", 1): 2}, COMPAT, 7)
    return path


def refusal(path: Path, compat: Compatibility = COMPAT, tps=TPS) -> str:
    with pytest.raises(SnapshotRefused) as info:
        read_snapshot(path, compat, tps)
    return str(info.value)


def test_a_corrupt_or_truncated_snapshot_is_refused(written):
    data = written.read_bytes()
    written.write_bytes(data[:-10])
    assert "corrupt" in refusal(written)
    flipped = bytearray(data)
    flipped[-5] ^= 0xFF
    written.write_bytes(bytes(flipped))
    assert "corrupt" in refusal(written)
    written.write_bytes(b"garbage")
    assert "not a fundflow snapshot" in refusal(written)


def test_a_missing_snapshot_is_refused(tmp_path):
    assert "no snapshot" in refusal(tmp_path / "absent.snapshot")


@pytest.mark.parametrize("other,said", [
    (Compatibility("group-b", COMPAT.settings, COMPAT.version, COMPAT.code), "group_id"),
    (Compatibility("group-a", {"window": 1, "allowed_lateness": 300_000}, COMPAT.version, COMPAT.code), "settings"),
    (Compatibility("group-a", COMPAT.settings, "9.9.9", COMPAT.code), "version"),
    (Compatibility("group-a", COMPAT.settings, COMPAT.version, "other-code"), "code"),
])
def test_a_snapshot_of_another_group_setting_version_or_code_is_refused(written, other, said):
    assert f"written with {said}" in refusal(written, other)


def test_a_snapshot_of_other_partitions_is_refused(written):
    assert "covers partitions in[0], in[1]" in refusal(written, tps={("in", 0)})


class SlowToPickle:
    def __reduce__(self):
        time.sleep(30)           # the child is still pickling when the test cancels it
        return (SlowToPickle, ())


def test_cancelling_a_write_in_progress_leaves_the_previous_snapshot_and_no_temporary_file(tmp_path):
    path = tmp_path / "s.snapshot"
    write_snapshot(path, ("old",), {("in", 0): 1, ("in", 1): 1}, COMPAT, 1)
    writer = SnapshotWriter(path, COMPAT)
    assert writer.start(SlowToPickle(), {("in", 0): 2, ("in", 1): 2}, now_ms=2)
    writer.cancel()
    assert not writer.busy and list(tmp_path.glob(".*.tmp")) == []
    assert read_snapshot(path, COMPAT, TPS).state == ("old",)


def _recovery_with(loader: SnapshotLoader) -> StateRecovery:
    """A recovery over a pipeline that never runs: only its rebalance callbacks are exercised."""
    async def publish(outcome, wait=True):
        return None
    pipeline = Pipeline(MessageHandler(Detector(load_rules(RULES))), publish=publish,
                        make_aligner=lambda: EventTimeAligner(idle_after_ms=1000, clock=lambda: 0))
    return StateRecovery(pipeline, lambda: None, bootstrap=["127.0.0.1:9"], group_id="g", input_topics=("in",),
                         span_ms=1000, snapshots=loader)


def test_the_snapshot_is_read_when_the_join_begins_and_taken_once_at_the_assignment(written):
    """The first revocation (nothing revoked, a join begins) starts the read. The file is replaced before the
    assignment: the assignment takes what was read during the join, and a later one reads the file again."""
    loader = SnapshotLoader(written, COMPAT)
    recovery = _recovery_with(loader)
    asyncio.run(recovery.on_revoked([]))
    assert loader.prefetches == 1
    asyncio.run(recovery.on_revoked([]))           # a second join before any assignment: the same read
    assert loader.prefetches == 1
    write_snapshot(written, ("newer",), {("in", 0): 5, ("in", 1): 6}, COMPAT, 8)
    snapshot = asyncio.run(recovery._usable_snapshot(TPS))
    assert snapshot.state == ("state", {"k": 1}) and snapshot.positions == {("in", 0): 1, ("in", 1): 2}
    assert asyncio.run(recovery._usable_snapshot(TPS)).state == ("newer",)


def test_a_prefetched_snapshot_is_refused_as_a_direct_read_would_be(written, tmp_path):
    loader = SnapshotLoader(written, COMPAT)
    loader.prefetch()
    with pytest.raises(SnapshotRefused,
                       match="covers partitions in\\[0\\], in\\[1\\], this worker was assigned in\\[0\\]"):
        loader.load({("in", 0)})
    missing = SnapshotLoader(tmp_path / "none.snapshot", COMPAT)
    missing.prefetch()
    with pytest.raises(SnapshotRefused, match="no snapshot at"):
        missing.load(TPS)
    other = SnapshotLoader(written, Compatibility.current("group-b", COMPAT.settings))
    other.prefetch()
    with pytest.raises(SnapshotRefused, match="written with group_id group-a, this worker has group-b"):
        other.load(TPS)
