"""Feeds on a Kafka topic: `fundflow indicators send` puts a member's signed feed on indicators_topic, a running
worker reads the whole topic (no consumer group), verifies the feed, merges it into indicators_dir and reloads it,
and the next withdrawal to the listed card raises a `shared_indicator` warning. A forged feed on the topic is
refused with its reason and offset, and the worker goes on."""

from __future__ import annotations

import argparse
import io

import orjson
from worker_harness import copy_rules, make_worker_env, metric, produce, warnings_in_topic

from stream.cli import main
from stream.cli.indicators import run_key
from stream.indicators.feed import Feed, entries_from, read_private_key, sign_feed
from stream.indicators.keys import ConsortiumKey

BASE_TS = 1_772_446_500_000  # 2026-03-02T10:15:00Z
KEY = ConsortiumKey("k1", bytes(range(32)))
TTL = 3650 * 86_400_000         # the worker judges expiry at import by the wall clock; the events are of March 2026


def withdrawal(n: int, card: str) -> dict:
    return {"type": "transfer", "event_id": f"t-{n}", "ts": BASE_TS + n * 60_000, "src": f"U{n}", "dst": card,
            "amount": "900.00", "currency": "CNY", "channel": "withdrawal"}


def test_a_feed_sent_to_the_topic_reaches_a_running_worker(kafka_broker, tmp_path, unique, free_port):
    rules_dir = copy_rules(tmp_path)
    (rules_dir / "sharing.override.yaml").write_text("overrides:\n  - rule: shared-indicator\n    enabled: true\n")
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "k1.key").write_text(KEY.secret.hex() + "\n")
    (tmp_path / "members").mkdir()
    out = io.StringIO()
    run_key(argparse.Namespace(settings=None, generate=tmp_path / "a.pem"), out=out)
    (tmp_path / "members" / "lender-a.pem").write_text(out.getvalue())
    (tmp_path / "shared").mkdir()
    topic = unique("it.indicators.")
    worker = make_worker_env(kafka_broker, tmp_path, unique, free_port, rules_dir, rules_reload_interval="300ms",
                             indicators_dir=str(tmp_path / "shared"), indicator_keys=str(tmp_path / "keys"),
                             indicators_topic=topic, indicator_members=str(tmp_path / "members"))
    names = worker.names

    def shared_warnings() -> set[str]:
        return {w["subject"] for w in warnings_in_topic(worker.bootstrap, names["warnings_topic"])
                if w["rule_id"] == "shared-indicator"}

    signing = read_private_key(tmp_path / "a.pem")
    good = Feed("lender-a", BASE_TS, {KEY.key_id: KEY.check},
                entries_from([("card", "6222000011112222", "rapid_cashout", BASE_TS, BASE_TS)], [KEY], TTL))
    (tmp_path / "good.json").write_bytes(sign_feed(good, signing))
    forged = orjson.loads(sign_feed(Feed("lender-a", BASE_TS + 1, {KEY.key_id: KEY.check}, entries_from(
        [("card", "6222000033334444", "rapid_cashout", BASE_TS, BASE_TS)], [KEY], TTL)), signing))
    forged["feed"]["entries"][0]["expires"] = "2099-01-01T00:00:00.000Z"
    (tmp_path / "forged.json").write_bytes(orjson.dumps(forged))
    try:
        worker.start()
        worker.wait_for(worker.ready, "the worker to be ready")
        worker.wait_for(lambda: "does not exist (yet)" in worker.log_text(), "the worker to look for the topic")
        assert main(["indicators", "send", str(tmp_path / "good.json"), "--broker", kafka_broker.url,
                     "--topic", topic]) == 0
        worker.wait_for(lambda: metric(worker.metrics(), "fundflow_indicators") == 1, "the feed to be merged")
        produce(worker.bootstrap, names, [withdrawal(1, "card:6222000011112222")])
        worker.wait_for(lambda: "U1" in shared_warnings(), "a shared_indicator warning from the topic's feed")

        assert main(["indicators", "send", str(tmp_path / "forged.json"), "--broker", kafka_broker.url,
                     "--topic", topic]) == 0
        worker.wait_for(lambda: "indicator feed refused" in worker.log_text(), "the refusal of the forged feed")
        assert f"{topic}[0]@1: bad signature" in worker.log_text()
        produce(worker.bootstrap, names, [withdrawal(2, "card:6222000033334444"), withdrawal(3, "6222000011112222")])
        worker.wait_for(lambda: "U3" in shared_warnings(), "detection to go on with the good feed")
        assert shared_warnings() == {"U1", "U3"}
        assert worker.runs[-1].poll() is None
    finally:
        worker.stop_all()
