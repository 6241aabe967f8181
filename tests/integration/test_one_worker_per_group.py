"""Two workers in one consumer group: each would see only part of the ledger and raise wrong warnings, so
neither detects; each says why on /readyz and in its log, nothing is committed, and once one worker holds every
input partition again it detects exactly what one worker alone would have."""

from __future__ import annotations

import json
import signal

from conftest import free_port as another_port
from test_recovery import reference_warnings
from worker_harness import committed_everything, copy_rules, make_worker_env, produce, warning_ids

from stream.simulate import simulate
from stream.simulate.params import SimParams


def test_a_worker_holding_part_of_the_input_does_not_detect_and_says_why(kafka_broker, tmp_path, unique, free_port):
    events, _ = simulate(SimParams(seed=3, accounts=200, days=1, instances=1, background_per_day=600))
    events = list(events)
    rules_dir = copy_rules(tmp_path)
    expected = reference_warnings(events, rules_dir)
    assert len(expected) >= 5, "the ledger must raise warnings for the comparison to mean something"
    worker = make_worker_env(kafka_broker, tmp_path, unique, free_port, rules_dir)
    names = worker.names
    inputs = [names["disbursements_topic"], names["transfers_topic"]]
    second_port = another_port()
    try:
        worker.start()
        worker.wait_for(worker.ready, "the first worker to be ready")
        second = worker.start(web_port=str(second_port), data_dir=str(tmp_path / "second"),
                              clickhouse_url=f"chdb://{tmp_path / 'chdb-second'}")

        first = worker.runs[0]

        def reasons(process) -> str:
            status, body = process.get("/readyz")
            return " ".join(json.loads(body)["reasons"]) if status == 503 and body else ""

        worker.wait_for(lambda: "input partitions" in reasons(first) and "input partitions" in reasons(
            second), "both workers to report that they hold only part of the input")
        assert "run one worker per group" in reasons(first)
        produce(worker.bootstrap, names, events)
        # Split, neither detects: no warning and no committed offset while both are in the group.
        worker.wait_for(lambda: "not detecting: this worker holds" in worker.log_text(0)
                        and "not detecting: this worker holds" in worker.log_text(1), "both logs to say why")
        assert warning_ids(worker.bootstrap, names["warnings_topic"]) == []
        assert not committed_everything(worker.bootstrap, names["app_id"], inputs)

        second.send_signal(signal.SIGTERM)
        second.wait(timeout=30)
        worker.runs.pop()           # the first worker's run stays the one waited on
        worker.wait_for(worker.ready, "the remaining worker to hold every partition and be ready")
        worker.wait_for(lambda: set(warning_ids(worker.bootstrap, names["warnings_topic"])) >= expected,
                        "every warning a single worker raises")
        worker.wait_for(lambda: committed_everything(worker.bootstrap, names["app_id"], inputs),
                        "everything consumed and committed")
        assert set(warning_ids(worker.bootstrap, names["warnings_topic"])) == expected
    finally:
        worker.stop_all()
