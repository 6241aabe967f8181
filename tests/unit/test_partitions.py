"""Detection state partitioned by key: the same warnings, byte for byte, for any partition count; each partition
holds only part of the state; a snapshot of a partitioned detector continues exactly."""

from __future__ import annotations

import pickle
from pathlib import Path

import orjson
import pytest

from stream.detection.detector import Detector
from stream.detection.partitioning import partition_of
from stream.model.events import parse_event
from stream.detection.rulebook import load_rules
from stream.simulate import simulate
from stream.simulate.params import SimParams

PACK = Path(__file__).resolve().parents[2] / "rules"
HOUR = 3_600_000
ANY_ORDER = """\
overrides:
  - rule: round-trip
    params: {in_time_order: false, min_ratio: 0.5}
"""


def ledger(**params) -> list:
    events, _ = simulate(SimParams(**{"accounts": 400, "days": 3, "instances": 3, "background_per_day": 2500,
                                      **params}))
    return [parse_event(orjson.dumps(raw)) for raw in events]


def replay(events: list, partitions: int, ruleset) -> tuple[bytes, Detector]:
    detector = Detector(ruleset, window_ms=72 * HOUR, lateness_ms=5 * 60_000, partitions=partitions)
    out = []
    for event in events:
        out.extend(warning.to_json() for warning in detector.process(event))
    return b"\n".join(out), detector


@pytest.mark.parametrize("params", [{"seed": 3}, {"seed": 4, "evasive": 0.6}],
                         ids=["plain", "evasive"])
def test_every_partition_count_writes_the_same_bytes(params):
    events = ledger(**params)
    ruleset = load_rules(PACK)
    one, single = replay(events, 1, ruleset)
    assert one.count(b"\n") >= 20, "the ledger must raise enough warnings for the comparison to mean something"
    assert {w.split(b'"rule_id":"')[1].split(b'"')[0] for w in one.splitlines()} >= {
        b"rapid-cashout", b"layering-chain", b"loan-fan-in", b"loan-fan-out", b"scatter-gather",
        b"gather-scatter", b"device-burst"}
    for partitions in (2, 3, 8):
        many, detector = replay(events, partitions, ruleset)
        assert many == one, f"{partitions} partitions wrote other warnings than one"
        held = [state.graph.edge_count for state in detector.partitions]
        assert all(held) and max(held) < single.edge_count, "each partition holds a part of the graph"


def test_rings_booked_in_any_order_are_searched_across_partitions_alike(tmp_path):
    override = tmp_path / "any-order.override.yaml"
    override.write_text(ANY_ORDER)
    events = ledger(seed=5)
    ruleset = load_rules(PACK, [override])
    one, _ = replay(events, 1, ruleset)
    assert b'"rule_id":"round-trip"' in one
    for partitions in (2, 3, 8):
        assert replay(events, partitions, ruleset)[0] == one


def test_a_snapshot_of_a_partitioned_detector_continues_exactly():
    import stream.worker.checkpoint  # noqa: F401 - registers how snapshots pickle an event's extra fields
    events = ledger(seed=6)
    ruleset = load_rules(PACK)
    whole, _ = replay(events, 3, ruleset)
    half = len(events) // 2
    first = Detector(ruleset, window_ms=72 * HOUR, lateness_ms=5 * 60_000, partitions=3)
    out = [w.to_json() for event in events[:half] for w in first.process(event)]
    restored = Detector(ruleset, window_ms=72 * HOUR, lateness_ms=5 * 60_000, partitions=3)
    restored.import_state(pickle.loads(pickle.dumps(first.export_state())))
    out += [w.to_json() for event in events[half:] for w in restored.process(event)]
    assert b"\n".join(out) == whole


def test_keys_land_where_kafka_would_put_records_keyed_by_them():
    # Kafka's own murmur2 test vectors (Java client, UtilsTest.testMurmur2), made positive and taken modulo the
    # partition count as its default partitioner does.
    vectors = {"21": -973932308, "foobar": -790332482, "a-little-bit-long-string": -985981536,
               "a-little-bit-longer-string": -1486304829, "abc": 479470107}
    for key, murmur in vectors.items():
        for partitions in (2, 6, 7):
            assert partition_of(key, partitions) == (murmur & 0x7FFFFFFF) % partitions
    assert partition_of("anything", 1) == 0
