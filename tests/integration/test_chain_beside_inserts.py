"""The evidence chain is written beside the warnings inserts, and a batch's offsets still wait for its chain.

A real worker (the sink agents on the real broker, a ClickHouse server of the test's own) whose chain appends
are slowed down: a warning produced while the chain of an earlier batch is being written is stored long
before that append ends. With the chain written in the same step as the insert, it waited for it. Then the
worker is killed while a chain append is under way, its warnings already stored: the restarted worker reads
that batch again (its offsets were not committed) and every warning ends up chained exactly once.
"""

from __future__ import annotations

import os
import sys
import textwrap
import time

from kafka import KafkaProducer

from stream.dev import devstack
from stream.dev.worker_process import WorkerProcess
from stream.sinks import evidence_tables
from stream.sinks.factory import open_store
from stream.sinks.store import WarningFilter
from test_sink_agents import _warning
from worker_harness import wait_for_worker

CHAIN_DELAY_S = 7.0
COMMIT_INTERVAL_S = 2.8       # Faust's broker_commit_interval: a stored batch acknowledged early is committed by then

WORKER_SCRIPT = textwrap.dedent(f"""
    import sys, time
    from stream.settings import load_settings
    from stream.sinks.chain import EvidenceChain
    from stream.worker.runner import run_worker

    class NoDetector:
        watermark = None

        def process(self, event, detected_at=None):
            return []

    slow_append = EvidenceChain.append
    def append(self, items):                      # a slow chain (runs in a thread: the loop goes on)
        time.sleep({CHAIN_DELAY_S})
        return slow_append(self, items)
    EvidenceChain.append = append
    sys.exit(run_worker(load_settings(None), NoDetector(), loglevel="warning"))
""")


def _stored(url: str) -> set[str]:
    try:
        with open_store(url) as store:
            return {r["warning_id"] for r in store.select_warnings(WarningFilter(limit=10_000))}
    except Exception:  # noqa: BLE001 - table not created yet
        return set()


def _chain(url: str) -> list[str]:
    try:
        with open_store(url) as store:
            return [record.warning_id for record in evidence_tables.records(store)]
    except Exception:  # noqa: BLE001 - tables not created yet
        return []


def test_inserts_do_not_wait_for_the_chain_and_offsets_wait_for_both(kafka_broker, tmp_path, unique, free_port):
    topics = {"disbursements_topic": unique("it.chain.disb."), "transfers_topic": unique("it.chain.xfer."),
              "warnings_topic": unique("it.chain.warnings."), "deadletter_topic": unique("it.chain.dl.")}
    kafka_broker.create_topics(list(topics.values()), partitions=1)
    clickhouse = devstack.start_clickhouse(workdir=tmp_path / "clickhouse")
    url = f"clickhouse://{clickhouse.host}:{clickhouse.port}/fundflow_chain_timing"
    env = {**os.environ, **{f"FUNDFLOW_{k.upper()}": v for k, v in topics.items()},
           "FUNDFLOW_APP_ID": unique("it-chain-"), "FUNDFLOW_BROKER_URL": kafka_broker.url,
           "FUNDFLOW_TOPIC_PARTITIONS": "1", "FUNDFLOW_WEB_PORT": str(free_port),
           "FUNDFLOW_DATA_DIR": str(tmp_path / "data"), "FUNDFLOW_BROKER_SESSION_TIMEOUT": "6s",
           "FUNDFLOW_BROKER_REBALANCE_TIMEOUT": "6s", "FUNDFLOW_CLICKHOUSE_URL": url,
           "FUNDFLOW_CLICKHOUSE_BATCH_INTERVAL": "50ms", "FUNDFLOW_BROKER_FETCH_MAX_WAIT": "50ms"}
    script = tmp_path / "worker.py"
    script.write_text(WORKER_SCRIPT)
    runs = iter(range(1, 10))

    def start() -> WorkerProcess:
        return WorkerProcess.start(env, tmp_path / f"worker-{next(runs)}.log", free_port,
                                   command=[sys.executable, str(script)], cwd=tmp_path)

    producer = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap, acks="all", linger_ms=0)

    def produce(*numbers: int) -> list[str]:
        warnings = [_warning(n) for n in numbers]
        for warning in warnings:
            producer.send(topics["warnings_topic"], key=warning.warning_id.encode(), value=warning.to_json())
        producer.flush(timeout=30)
        return [warning.warning_id for warning in warnings]

    worker = start()
    try:
        first = produce(1)
        wait_for_worker(worker, lambda: set(first) <= _stored(url), "the first warning stored", 60)
        # Its chain append has begun and takes CHAIN_DELAY_S: the next warning must not wait for it.
        produced = time.monotonic()
        second = produce(2)
        wait_for_worker(worker, lambda: set(second) <= _stored(url), "the second warning stored", 60)
        stored_after = time.monotonic() - produced
        assert stored_after < CHAIN_DELAY_S / 2, \
            f"the second warning took {stored_after:.1f} s to be stored: it waited for the first one's chain"
        wait_for_worker(worker, lambda: sorted(_chain(url)) == sorted(first + second), "both chained", 60)

        # Killed while a chain append sleeps, after its warning is stored and after a commit would have
        # taken its offset had it been acknowledged: the batch is read again.
        third = produce(3)
        wait_for_worker(worker, lambda: set(third) <= _stored(url), "the third warning stored", 60)
        time.sleep(COMMIT_INTERVAL_S + 0.7)
        worker.kill()
        worker.wait(timeout=10)
        assert set(third).isdisjoint(_chain(url))
        worker = start()
        wait_for_worker(worker, lambda: set(third) <= set(_chain(url)), "the third warning chained after the restart",
                        90)
        chain = _chain(url)
        assert sorted(chain) == sorted(first + second + third), chain      # once each
    finally:
        worker.stop(timeout_s=30)
        producer.close()
        clickhouse.stop()
