"""The broker fetch wait reaches the consumer Faust builds (a broker that holds fetches until the wait is over
otherwise adds up to Faust's fixed 1.5 s to every warning's delay)."""

import asyncio

from stream.settings import load_settings
from stream.worker.compose import build_worker


class QuietDetector:
    watermark = None

    def process(self, event, detected_at=None):
        return []


def test_fetch_wait_setting_reaches_the_worker_consumer(tmp_path):
    async def built_consumer_wait() -> int:
        settings = load_settings(env={"FUNDFLOW_BROKER_FETCH_MAX_WAIT": "123ms", "FUNDFLOW_DATA_DIR": str(tmp_path)})
        app = build_worker(settings, QuietDetector(), with_sinks=False).app
        consumer = app.consumer._thread._create_worker_consumer(app.transport)
        try:
            return consumer._fetch_max_wait_ms
        finally:
            await consumer.stop()

    assert asyncio.run(built_consumer_wait()) == 123


def test_a_revoked_assignment_makes_the_evidence_chain_writer_forget_what_it_remembers(tmp_path):
    """Another worker may extend a partition's chain while this one does not own it: after a revocation the
    writer must read the head from the store again (stream/sinks/chain.py, `forget`)."""
    async def revoke() -> list[str]:
        settings = load_settings(env={"FUNDFLOW_DATA_DIR": str(tmp_path),
                                      "FUNDFLOW_CLICKHOUSE_URL": "clickhouse://127.0.0.1:9/unused"})
        built = build_worker(settings, QuietDetector())
        calls: list[str] = []
        built.sinks.chain.forget = lambda: calls.append("forget")
        await built.app.on_partitions_revoked.send(set())
        return calls

    assert asyncio.run(revoke()) == ["forget"]
