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
from pathlib import Path

from worker_harness import (committed_everything, copy_rules, make_worker_env, metric, produce, warning_ids,
                            warnings_in_topic)

from stream.detection.detector import Detector
from stream.events import parse_event
from stream.rules.loader import load_rules
from stream.settings import load_settings
from stream.simulate import simulate
from stream.simulate.params import SimParams

def reference_warnings(events: list[dict], rules_dir: Path) -> set[str]:
    defaults = load_settings(None, env={})
    detector = Detector(load_rules(rules_dir), window_ms=defaults.window, lateness_ms=defaults.allowed_lateness)
    parsed = sorted((parse_event(json.dumps(e).encode()) for e in events), key=lambda e: e.ts)
    return {w.warning_id for event in parsed for w in detector.process(event)}


def test_sigkill_with_events_held_in_the_aligner_loses_no_warning(kafka_broker, tmp_path, unique, free_port):
    events, _ = simulate(SimParams(seed=3, accounts=300, days=2, instances=2, background_per_day=800))
    events = list(events)
    rules_dir = copy_rules(tmp_path)
    expected = reference_warnings(events, rules_dir)
    assert len(expected) >= 40, "the ledger must plant enough patterns to be a meaningful check"
    first_half, second_half = events[: len(events) // 2], events[len(events) // 2:]

    worker = make_worker_env(kafka_broker, tmp_path, unique, free_port, rules_dir)
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
        rebuild_line = next(line for line in worker.log_text().splitlines() if "state rebuilt from" in line)
        print(f"\n{held:.0f} events held at SIGKILL; {rebuild_line.split('state rebuilt ', 1)[1]}")
    finally:
        worker.stop_all()
