"""The worker's HTTP pages over real HTTP, with the real detector and rules: readiness follows the state
rebuild, and /metrics carries the figures an operator watches (warnings per rule, latency, lag, aligner,
rebuild, dead letters).
"""

from __future__ import annotations

import json
import time

from kafka import KafkaProducer
from test_reload import loan_cashed_out
from worker_harness import copy_rules, make_worker_env, metric, produce



def test_readiness_waits_for_the_rebuild_and_metrics_follow_the_stream(kafka_broker, tmp_path, unique, free_port):
    worker = make_worker_env(kafka_broker, tmp_path, unique, free_port, copy_rules(tmp_path))
    names = worker.names
    try:
        worker.start()
        answers: list[tuple[int, bool]] = []        # (status of /readyz, rebuild logged when the answer came)

        def ready_after_rebuild():
            # The log is read after the answer: the worker logs the rebuild before it turns ready, so a 200 read
            # before the log (the other order) could see a rebuild finish in between and fail for nothing.
            status, body = worker.runs[-1].get("/readyz")
            rebuilt = "state rebuilt from" in worker.log_text()
            if status:
                answers.append((status, rebuilt))
            return status == 200
        worker.wait_for(ready_after_rebuild, "/readyz to answer 200")
        assert answers[0][0] == 503, "the first answer must come before the state is rebuilt"
        assert all(rebuilt for status, rebuilt in answers if status == 200)
        assert worker.runs[-1].get("/healthz")[0] == 200

        produce(worker.bootstrap, names, loan_cashed_out(0, "4900.00") + loan_cashed_out(1, "4950.00"))
        producer = KafkaProducer(bootstrap_servers=worker.bootstrap)
        producer.send(names["transfers_topic"], key=b"U9", value=json.dumps(
            {"type": "transfer", "event_id": "t-neg", "ts": 1_772_446_500_000, "src": "U9", "dst": "U8",
             "amount": "-5"}).encode()).get(timeout=30)
        producer.close()

        def figures():
            text = worker.metrics()
            done = (metric(text, "fundflow_warnings_total", rule_id="rapid-cashout", severity="high") == 2
                    and metric(text, "fundflow_deadlettered_total", reason="bad_amount") == 1
                    and metric(text, "fundflow_aligner_pending") == 0)
            return text if done else None
        started = time.monotonic()
        text = worker.wait_for(figures, "the metrics of two cash-outs and one bad amount")
        assert metric(text, "fundflow_events_consumed_total", topic=names["transfers_topic"]) == 2
        assert metric(text, "fundflow_events_consumed_total", topic=names["disbursements_topic"]) == 2
        assert metric(text, "fundflow_processing_latency_seconds_count") == 4
        assert 0 < metric(text, "fundflow_processing_latency_seconds_sum") < 4 * (time.monotonic() - started + 5)
        newest = 1_772_446_500_000 + 3_600_000 + 600_000
        assert metric(text, "fundflow_watermark_seconds") == (newest - 300_000) / 1000   # minus allowed lateness
        assert metric(text, "fundflow_graph_nodes") >= 4 and metric(text, "fundflow_lots") >= 2
        assert metric(text, "fundflow_rebuild_events") == 0 and metric(text, "fundflow_rebuild_seconds") >= 0
        for topic in (names["disbursements_topic"], names["transfers_topic"]):
            for partition in range(3):
                assert metric(text, "fundflow_consumer_lag", topic=topic, partition=str(partition)) == 0
        assert metric(text, "fundflow_rule_reloads_total", result="ok") == 0
    finally:
        worker.stop_all()
