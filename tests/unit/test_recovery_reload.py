"""Pure parts of state recovery (window start, replay order) and of the rules reloader (real loader, temp dir)."""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

from stream.detection.rulebook import load_rules
from stream.worker.recovery import LogRecord, merge_by_event_time, window_lookup_time
from stream.worker.reload import RuleReloader, rules_fingerprint

RULES = Path(__file__).resolve().parents[2] / "rules"


def record(partition: int, offset: int, ts: int | None) -> LogRecord:
    value = b"{broken" if ts is None else json.dumps(
        {"type": "transfer", "event_id": f"e{partition}-{offset}", "ts": 1_772_446_500_000 + ts, "src": "A",
         "dst": "B", "amount": "1.00"}).encode()
    return LogRecord("t", partition, offset, b"A", value, 0)


def test_window_lookup_uses_the_older_of_kafka_and_event_time_and_never_goes_negative():
    assert window_lookup_time(10_000, 4_000, 1_000) == 3_000      # back-fill: event time older than append
    assert window_lookup_time(10_000, None, 1_000) == 9_000        # unparseable last record: Kafka time
    assert window_lookup_time(500, 700, 1_000) == 0


def test_replay_interleaves_partitions_by_event_time_and_keeps_each_partition_in_log_order():
    p0 = [record(0, 0, 10), record(0, 1, 30), record(0, 2, 20), record(0, 3, None), record(0, 4, 50)]
    p1 = [record(1, 0, 15), record(1, 1, 25), record(1, 2, 60)]
    merged = merge_by_event_time([p0, p1])
    assert [(r.partition, r.offset) for r in merged] == [
        (0, 0), (1, 0), (1, 1), (0, 1), (0, 2), (0, 3), (0, 4), (1, 2)]
    assert merge_by_event_time([]) == []


DAY = 86_400_000


def test_a_far_future_record_does_not_push_the_rest_of_its_partition_to_the_end():
    """Regression: one record dated a week ahead (refused by the jump guard) used to move its partition's merge
    key, so every later record of that partition sorted after all others and the rebuild diverged."""
    p0 = [record(0, 0, 10), record(0, 1, 30), record(0, 3, 40), record(0, 4, 50)]
    p1 = [record(1, 0, 15), record(1, 1, 35), record(1, 2, 45), record(1, 3, 60)]
    clean = [(r.partition, r.offset) for r in merge_by_event_time([p0, p1])]
    poisoned = [(r.partition, r.offset) for r in merge_by_event_time([p0[:2] + [record(0, 2, 7 * DAY)] + p0[2:], p1])]
    assert [coords for coords in poisoned if coords != (0, 2)] == clean
    assert poisoned.index((0, 2)) == poisoned.index((0, 1)) + 1    # in log order, at its neighbours' time


def test_a_confirmed_jump_moves_the_partition_forward():
    p0 = [record(0, 0, 10), record(0, 1, 2 * DAY), record(0, 2, 2 * DAY + 1), record(0, 3, 2 * DAY + 2)]
    p1 = [record(1, 0, 20), record(1, 1, DAY + 5)]
    merged = [(r.partition, r.offset) for r in merge_by_event_time([p0, p1])]
    assert merged.index((1, 1)) < merged.index((0, 3))     # three agreeing records: the partition really jumped


def test_fingerprint_sees_content_names_and_nothing_else(tmp_path):
    rules = tmp_path / "rules"
    shutil.copytree(RULES, rules)
    first = rules_fingerprint(rules)
    assert rules_fingerprint(rules) == first
    path = rules / "cashout.yaml"
    stat = path.stat()
    path.write_text(path.read_text().replace("min_ratio: 0.8", "min_ratio: 0.7"))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))     # same mtime and size: content still counts
    assert rules_fingerprint(rules) != first
    assert rules_fingerprint(tmp_path / "absent") == "missing"


def test_reloader_swaps_a_good_set_and_keeps_the_old_one_on_errors(tmp_path, caplog):
    rules = tmp_path / "rules"
    shutil.copytree(RULES, rules, ignore=shutil.ignore_patterns("*.md"))
    applied = []
    reloader = RuleReloader(rules, load_rules(rules), lambda: load_rules(rules), apply=applied.append)
    first = reloader.current
    assert not reloader.check().changed

    path = rules / "cashout.yaml"
    path.write_text(path.read_text().replace("min_ratio: 0.8", "min_ratio: 0.9"))
    with caplog.at_level(logging.INFO, logger="stream.worker.reload"):
        result = reloader.check()
    assert result.changed and result.ok and result.version == reloader.current.version != first.version
    assert applied == [reloader.current]
    assert "rapid-cashout" in result.summary and "min_ratio" in result.summary and "tightened" in result.summary
    assert reloader.current.by_id("rapid-cashout").version != first.by_id("rapid-cashout").version
    good = reloader.current

    text = path.read_text().splitlines()
    line = next(i for i, t in enumerate(text, 1) if "min_ratio:" in t)
    text[line - 1] = text[line - 1].replace("0.9", "lots")
    path.write_text("\n".join(text) + "\n")
    with caplog.at_level(logging.ERROR, logger="stream.worker.reload"):
        broken = reloader.check()
    assert broken.changed and not broken.ok and reloader.current is good and len(applied) == 1
    assert any(f"cashout.yaml:{line}" in error for error in broken.errors), broken.errors
    assert f"cashout.yaml:{line}" in caplog.text
    assert not reloader.check().changed, "the same broken files are reported once"
    assert (reloader.reloads_ok, reloader.reloads_failed) == (1, 1)
