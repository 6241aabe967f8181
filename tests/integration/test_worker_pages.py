"""The worker's /healthz, /readyz and /metrics over real HTTP, with the real Faust worker on a real broker.

What the deployment probes depend on: /healthz answers 200 once the worker runs, /readyz turns 200 once
the consumer has caught up with the input topics, and /metrics is valid exposition text whose counters
follow the events the worker consumed and dead-lettered.
"""

from __future__ import annotations

import json
import os
import sys
import textwrap
import urllib.error
import urllib.request

from kafka import KafkaProducer

from stream.worker.metrics import CONTENT_TYPE
from stream.dev import promtext
from stream.dev.worker_process import WorkerProcess
from worker_harness import wait_for_worker

DEADLINE_S = 60.0
BASE_TS = 1_772_446_500_000  # 2026-03-02T10:15:00Z

WORKER_SCRIPT = textwrap.dedent("""
    import sys
    from stream.settings import load_settings
    from stream.worker.runner import run_worker

    class QuietDetector:
        graph_nodes = 0

        def __init__(self):
            self.watermark = None

        def process(self, event, detected_at=None):
            self.watermark = max(self.watermark or event.ts, event.ts)
            self.graph_nodes += 1
            return []

        def stats(self):
            return {"nodes": self.graph_nodes}

    sys.exit(run_worker(load_settings(None), QuietDetector(), loglevel="warning"))
""")


def get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read().decode()


def wait_for(condition, what: str, worker: WorkerProcess) -> None:
    wait_for_worker(worker, condition, what, DEADLINE_S, tolerate=(urllib.error.URLError, ConnectionError, OSError))


def sample(body: str, name: str, **labels: str) -> float | None:
    return promtext.value(promtext.parse_samples(body), name, **labels)


def test_health_readiness_and_metrics_pages(kafka_broker, tmp_path, unique, free_port):
    names = {"disbursements_topic": unique("disb"), "transfers_topic": unique("xfer"),
             "deadletter_topic": unique("dead"), "warnings_topic": unique("warn"), "app_id": unique("app")}
    port = free_port
    env = {**os.environ, **{f"FUNDFLOW_{k.upper()}": v for k, v in names.items()},
           "FUNDFLOW_BROKER_URL": kafka_broker.url, "FUNDFLOW_TOPIC_PARTITIONS": "2",
           "FUNDFLOW_WEB_PORT": str(port), "FUNDFLOW_DATA_DIR": str(tmp_path / "data"),
           "FUNDFLOW_CLICKHOUSE_URL": f"chdb://{tmp_path / 'chdb'}",
           "FUNDFLOW_BROKER_SESSION_TIMEOUT": "6s", "FUNDFLOW_BROKER_REBALANCE_TIMEOUT": "6s"}
    script = tmp_path / "worker.py"
    script.write_text(WORKER_SCRIPT)
    log_path = tmp_path / "worker.log"
    base = f"http://127.0.0.1:{port}"
    worker = WorkerProcess.start(env, log_path, port, command=[sys.executable, str(script)])
    try:
        wait_for(lambda: get(base + "/healthz")[0] == 200, "/healthz to answer 200", worker)
        status, content_type, body = get(base + "/healthz")
        assert content_type == "application/json" and json.loads(body) == {"status": "ok"}

        producer = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap)
        good = 5
        for n in range(good):
            event = {"type": "transfer", "event_id": f"t-{n}", "ts": BASE_TS + n * 1000, "src": f"U{n}",
                     "dst": "U9", "amount": "10.00", "channel": "p2p"}
            producer.send(names["transfers_topic"], key=f"U{n}".encode(), value=json.dumps(event).encode())
        producer.send(names["transfers_topic"], key=b"U0", value=b"{not json")
        producer.flush()
        producer.close()

        wait_for(lambda: sample(get(base + "/metrics")[2], "fundflow_events_consumed_total",
                                topic=names["transfers_topic"]) == good,
                 "the consumed-events counter to reach 5", worker)
        status, content_type, body = get(base + "/metrics")
        assert status == 200 and content_type == CONTENT_TYPE
        assert promtext.total(promtext.parse_samples(body), "fundflow_deadlettered_total") == 1
        assert sample(body, "fundflow_watermark_seconds") == (BASE_TS + (good - 1) * 1000) / 1000
        assert sample(body, "fundflow_graph_nodes") == good
        assert "# TYPE fundflow_processing_latency_seconds histogram" in body
        # the ClickHouse sink (embedded chDB here) reports its own counts: no warnings, so nothing stored
        assert sample(body, "fundflow_sink_deliveries_total", sink="clickhouse") == 0
        assert sample(body, "fundflow_sink_failures_total", sink="clickhouse") == 0

        wait_for(lambda: get(base + "/readyz")[0] == 200, "/readyz to answer 200 once caught up", worker)
        status, _, body = get(base + "/readyz")
        assert json.loads(body)["reasons"] == []
        lags = [s.value for s in promtext.parse_samples(get(base + "/metrics")[2]) if s.name == "fundflow_consumer_lag"]
        assert lags and all(lag == 0 for lag in lags), lags
    finally:
        worker.stop(timeout_s=30)
