"""Graceful shutdown on a real broker: SIGTERM while events are held in the aligner exits 0 within a bound,
publishes what was held, and a restart ends with exactly the warnings of an uninterrupted run.
"""

from __future__ import annotations

import signal
import subprocess
import time

from test_recovery import reference_warnings
from worker_harness import committed_everything, copy_rules, make_worker_env, metric, produce, warning_ids

from stream.simulate import simulate
from stream.simulate.params import SimParams

SHUTDOWN_BOUND_S = 15.0


def test_sigterm_flushes_held_events_exits_0_in_time_and_a_restart_loses_nothing(kafka_broker, clickhouse_server,
                                                                                  tmp_path, unique, free_port):
    events, _ = simulate(SimParams(seed=5, accounts=300, days=2, instances=2, background_per_day=600))
    events = list(events)
    rules_dir = copy_rules(tmp_path)
    expected = reference_warnings(events, rules_dir)
    database = unique("it_shutdown_")
    clickhouse_server.client().execute(f"CREATE DATABASE {database}")
    clickhouse_url = f"clickhouse://127.0.0.1:{clickhouse_server.port}/{database}"
    worker = make_worker_env(kafka_broker, tmp_path, unique, free_port, rules_dir, clickhouse_url=clickhouse_url)
    names = worker.names
    inputs = [names["disbursements_topic"], names["transfers_topic"]]
    try:
        first = worker.start(align_idle_after="10m")
        worker.wait_for(worker.ready, "the first worker to be ready")
        produce(worker.bootstrap, names, events)

        def events_held():
            text = worker.metrics()
            return text and (metric(text, "fundflow_aligner_pending") or 0) > 0
        worker.wait_for(events_held, "events held in the aligner")
        stopping = time.monotonic()
        first.send_signal(signal.SIGTERM)
        try:
            code = first.wait(timeout=SHUTDOWN_BOUND_S)
        except subprocess.TimeoutExpired:
            first.kill()
            raise AssertionError(f"no exit within {SHUTDOWN_BOUND_S}s of SIGTERM\n{worker.log_text()[-3000:]}")
        shutdown_s = time.monotonic() - stopping
        assert code == 0, worker.log_text()[-3000:]
        flush_line = next((line for line in worker.log_text().splitlines() if "held events detected" in line), "")
        assert flush_line, "the held events must go through the detector at shutdown"

        worker.start()
        worker.wait_for(lambda: expected <= set(warning_ids(worker.bootstrap, names["warnings_topic"])),
                        "every expected warning after the restart")
        worker.wait_for(lambda: committed_everything(worker.bootstrap, names["app_id"], inputs)
                        and metric(worker.metrics(), "fundflow_aligner_pending") == 0,
                        "the restarted worker to consume and detect everything")
        assert set(warning_ids(worker.bootstrap, names["warnings_topic"])) == expected
        stored = worker.wait_for(lambda: (lambda ids: ids if ids == expected else None)(
            {row[0] for row in clickhouse_server.client().execute(f"SELECT warning_id FROM {database}.warnings")}),
            "the ClickHouse sink to hold every warning")
        assert stored == expected
        print(f"\nshutdown took {shutdown_s:.2f}s; {flush_line.split('shutdown: ', 1)[-1]}")
    finally:
        worker.stop_all()
