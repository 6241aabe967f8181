"""State recovery on a real broker: SIGKILL the worker while events sit in its aligner, restart it, and get
exactly the warnings of an uninterrupted run.

The ledger is a small synthetic one with planted typologies; the reference is the same real Detector and
rules run over the whole ledger in event-time order (what `fundflow replay` does). The first worker runs
with a long aligner idle time, so the tail of the input is acknowledged and committed while still held in
the aligner: those events were never detected when the worker dies, and only the rebuild (which replays the
log up to the committed offsets and publishes what it raises) can bring their warnings back.
"""

from __future__ import annotations

import json
import signal
import time
from collections import Counter
from pathlib import Path

from test_pager import SECRET, Webhook  # the recording webhook server of the pager tests
from worker_harness import (committed_everything, copy_rules, make_worker_env, metric, produce, warning_ids,
                            warnings_in_topic)

from stream.detection.detector import Detector
from stream.model.events import parse_event
from stream.detection.rulebook import load_rules
from stream.settings import load_settings
from stream.simulate import simulate
from stream.simulate.params import SimParams

def reference_run(events: list[dict], rules_dir: Path) -> list:
    """The warnings of the real Detector over the whole ledger in event-time order (`fundflow replay`)."""
    defaults = load_settings(None, env={})
    detector = Detector(load_rules(rules_dir), window_ms=defaults.window, lateness_ms=defaults.allowed_lateness)
    parsed = sorted((parse_event(json.dumps(e).encode()) for e in events), key=lambda e: e.ts)
    return [w for event in parsed for w in detector.process(event)]


def reference_warnings(events: list[dict], rules_dir: Path) -> set[str]:
    return {w.warning_id for w in reference_run(events, rules_dir)}


def test_sigkill_with_events_held_in_the_aligner_loses_no_warning(kafka_broker, tmp_path, unique, free_port):
    events, _ = simulate(SimParams(seed=3, accounts=300, days=2, instances=2, background_per_day=800))
    events = list(events)
    rules_dir = copy_rules(tmp_path)
    reference = reference_run(events, rules_dir)
    expected = {w.warning_id for w in reference}
    to_page = {w.warning_id for w in reference if "pager" in w.notify and w.severity in ("high", "critical")}
    assert len(expected) >= 40 and len(to_page) >= 10, "the ledger must plant enough patterns to be meaningful"
    first_half, second_half = events[: len(events) // 2], events[len(events) // 2:]

    webhook = Webhook(lambda: time.time_ns() // 1_000_000)
    worker = make_worker_env(kafka_broker, tmp_path, unique, free_port, rules_dir, webhook_url=webhook.url,
                             webhook_secret=SECRET, page_storm_limit="1000")
    names = worker.names
    inputs = [names["disbursements_topic"], names["transfers_topic"]]
    try:
        produce(worker.bootstrap, names, first_half)
        first = worker.start(align_idle_after="10m")

        def committed_with_events_held():
            text = worker.metrics()
            pending = metric(text, "fundflow_aligner_pending") if text else None
            return bool(pending) and committed_everything(worker.bootstrap, names["app_id"], inputs) and pending
        held = worker.wait_for(committed_with_events_held, "the first half committed while events are held")
        before_kill = set(warning_ids(worker.bootstrap, names["warnings_topic"]))
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)

        produce(worker.bootstrap, names, second_half)
        worker.start()
        worker.wait_for(lambda: "state rebuilt from" in worker.log_text(), "the state rebuild")
        worker.wait_for(lambda: expected <= set(warning_ids(worker.bootstrap, names["warnings_topic"])),
                        "every expected warning in the warnings topic")
        worker.wait_for(lambda: committed_everything(worker.bootstrap, names["app_id"], inputs)
                        and metric(worker.metrics(), "fundflow_aligner_pending") == 0,
                        "the second run to consume and detect everything")
        published = warnings_in_topic(worker.bootstrap, names["warnings_topic"])
        got = {w["warning_id"] for w in published}
        assert got == expected, (f"missing {sorted(expected - got)[:5]}, unexpected {sorted(got - expected)[:5]}")
        assert expected - before_kill, "the kill must interrupt the run before every warning was published"
        assert worker.ready()

        def paged() -> Counter:
            return Counter(json.loads(r["body"])["warning_id"] for r in list(webhook.requests))
        worker.wait_for(lambda: set(paged()) == to_page, "the pager to page every high warning")
        assert set(paged().values()) == {1}, "each warning is paged once across the kill and the replay"
        rebuild_line = next(line for line in worker.log_text().splitlines() if "state rebuilt from" in line)
        print(f"\n{held:.0f} events held at SIGKILL; {rebuild_line.split('state rebuilt ', 1)[1]}")
    finally:
        worker.stop_all()
        webhook.close()


def test_restart_from_a_snapshot_replays_only_the_log_after_it_and_loses_no_warning(kafka_broker, tmp_path, unique,
                                                                                    free_port):
    events, _ = simulate(SimParams(seed=5, accounts=300, days=2, instances=2, background_per_day=800))
    events = list(events)
    rules_dir = copy_rules(tmp_path)
    expected = reference_warnings(events, rules_dir)
    first_part, second_part, third_part = events[:len(events) // 3], events[len(events) // 3:2 * len(events) // 3], \
        events[2 * len(events) // 3:]
    worker = make_worker_env(kafka_broker, tmp_path, unique, free_port, rules_dir, snapshot_interval="1s")
    names = worker.names
    inputs = [names["disbursements_topic"], names["transfers_topic"]]
    try:
        produce(worker.bootstrap, names, first_part)
        first = worker.start()
        worker.wait_for(lambda: committed_everything(worker.bootstrap, names["app_id"], inputs)
                        and metric(worker.metrics(), "fundflow_snapshot_age_seconds") is not None,
                        "the first part consumed and a snapshot written")
        first.send_signal(signal.SIGTERM)              # graceful: a last snapshot covers everything read
        first.wait(timeout=30)

        produce(worker.bootstrap, names, second_part)
        second = worker.start()
        worker.wait_for(lambda: "and the snapshot of" in worker.log_text(), "a rebuild from the snapshot")
        rebuilt = next(line for line in worker.log_text().splitlines() if "state rebuilt from" in line)
        assert " 0 records" in rebuilt, rebuilt        # nothing before the snapshot is read again
        worker.wait_for(lambda: committed_everything(worker.bootstrap, names["app_id"], inputs)
                        and metric(worker.metrics(), "fundflow_aligner_pending") == 0
                        and metric(worker.metrics(), "fundflow_rebuild_from_snapshot") == 1,
                        "the second part consumed")
        time.sleep(2.5)                                 # at least one more periodic snapshot
        second.send_signal(signal.SIGKILL)             # abrupt: the snapshot is older than the committed offsets
        second.wait(timeout=10)

        produce(worker.bootstrap, names, third_part)
        worker.start()
        worker.wait_for(lambda: worker.log_text().count("state rebuilt from") >= 1
                        and "and the snapshot of" in worker.log_text(), "a second rebuild from a snapshot")
        worker.wait_for(lambda: expected <= set(warning_ids(worker.bootstrap, names["warnings_topic"])),
                        "every expected warning in the warnings topic")
        worker.wait_for(lambda: committed_everything(worker.bootstrap, names["app_id"], inputs)
                        and metric(worker.metrics(), "fundflow_aligner_pending") == 0, "everything consumed")
        got = set(warning_ids(worker.bootstrap, names["warnings_topic"]))
        assert got == expected, (f"missing {sorted(expected - got)[:5]}, unexpected {sorted(got - expected)[:5]}")
    finally:
        worker.stop_all()


def test_a_corrupt_snapshot_is_refused_and_the_window_rebuilt(kafka_broker, tmp_path, unique, free_port):
    events, _ = simulate(SimParams(seed=6, accounts=300, days=1, instances=1, background_per_day=800))
    events = list(events)
    rules_dir = copy_rules(tmp_path)
    expected = reference_warnings(events, rules_dir)
    worker = make_worker_env(kafka_broker, tmp_path, unique, free_port, rules_dir, snapshot_interval="1s")
    names = worker.names
    inputs = [names["disbursements_topic"], names["transfers_topic"]]
    try:
        produce(worker.bootstrap, names, events[:len(events) // 2])
        first = worker.start()
        worker.wait_for(lambda: committed_everything(worker.bootstrap, names["app_id"], inputs)
                        and metric(worker.metrics(), "fundflow_snapshot_age_seconds") is not None, "a snapshot")
        first.send_signal(signal.SIGTERM)
        first.wait(timeout=30)
        [path] = list((tmp_path / "data" / "snapshots").glob("*.snapshot"))
        data = bytearray(path.read_bytes())
        data[-100] ^= 0xFF
        path.write_bytes(bytes(data))

        produce(worker.bootstrap, names, events[len(events) // 2:])
        worker.start()
        worker.wait_for(lambda: "state rebuilt from" in worker.log_text(), "the rebuild")
        assert "snapshot not used" in worker.log_text() and "corrupt" in worker.log_text()
        assert "and the snapshot of" not in worker.log_text()
        worker.wait_for(lambda: expected <= set(warning_ids(worker.bootstrap, names["warnings_topic"])),
                        "every expected warning in the warnings topic")
        assert set(warning_ids(worker.bootstrap, names["warnings_topic"])) == expected
    finally:
        worker.stop_all()
