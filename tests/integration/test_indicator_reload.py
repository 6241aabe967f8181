"""A running worker picks up a new indicator feed without a restart: `fundflow indicators import` rewrites
indicators_dir, the worker reloads it on the rules timer, and the next withdrawal to the listed card raises a
`shared_indicator` warning, while the one before the import did not. A broken set is refused and the running one
stays.

Each loan is withdrawn whole to the same bank card ten minutes after disbursement, so its rapid-cashout warning
shows the withdrawal was detected.
"""

from __future__ import annotations

import argparse
import io
import json

from worker_harness import copy_rules, make_worker_env, metric, produce, warnings_in_topic

from stream.cli import main
from stream.cli.indicators import run_key
from stream.indicators.feed import Feed, entries_from, read_private_key, sign_feed
from stream.indicators.keys import ConsortiumKey

BASE_TS = 1_772_446_500_000  # 2026-03-02T10:15:00Z
CARD = "card:6222000011112222"
KEY = ConsortiumKey("k1", bytes(range(32)))


def loan_cashed_out(n: int) -> list[dict]:
    ts = BASE_TS + n * 3_600_000
    return [{"type": "disbursement", "event_id": f"d-{n}", "ts": ts, "loan_id": f"L-{n}", "account": f"U{n}",
             "amount": "5000.00", "currency": "CNY"},
            {"type": "transfer", "event_id": f"t-{n}", "ts": ts + 600_000, "src": f"U{n}", "dst": CARD,
             "amount": "4900.00", "currency": "CNY", "channel": "withdrawal"}]


def test_a_new_feed_is_picked_up_without_a_restart(kafka_broker, tmp_path, unique, free_port):
    rules_dir = copy_rules(tmp_path)
    (rules_dir / "sharing.override.yaml").write_text("overrides:\n  - rule: shared-indicator\n    enabled: true\n")
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "k1.key").write_text(KEY.secret.hex() + "\n")
    (tmp_path / "members").mkdir()
    out = io.StringIO()
    run_key(argparse.Namespace(settings=None, generate=tmp_path / "a.pem"), out=out)
    (tmp_path / "members" / "lender-a.pem").write_text(out.getvalue())
    shared = tmp_path / "shared"
    shared.mkdir()
    settings = {"indicators_dir": str(shared), "indicator_keys": str(tmp_path / "keys")}
    (tmp_path / "b.yaml").write_text("".join(f"{k}: {json.dumps(v)}\n" for k, v in settings.items()))
    worker = make_worker_env(kafka_broker, tmp_path, unique, free_port, rules_dir, rules_reload_interval="300ms",
                             **settings)
    names = worker.names

    def warnings(rule_id: str) -> set[str]:
        return {w["subject"] for w in warnings_in_topic(worker.bootstrap, names["warnings_topic"])
                if w["rule_id"] == rule_id}

    try:
        worker.start()
        worker.wait_for(worker.ready, "the worker to be ready")
        assert f"fundflow worker: indicators: {shared}: no indicators" in worker.log_text()
        produce(worker.bootstrap, names, loan_cashed_out(0))
        worker.wait_for(lambda: "L-0" in warnings("rapid-cashout"), "the first cash-out to be detected")
        assert warnings("shared-indicator") == set()

        feed = Feed("lender-a", BASE_TS, {KEY.key_id: KEY.check},
                    entries_from([("card", CARD[5:], "rapid_cashout", BASE_TS, BASE_TS)], [KEY], 90 * 86_400_000))
        (tmp_path / "feed.json").write_bytes(sign_feed(feed, read_private_key(tmp_path / "a.pem")))
        assert main(["--settings", str(tmp_path / "b.yaml"), "indicators", "import", str(tmp_path / "feed.json"),
                     "--members", str(tmp_path / "members"), "--now", "2026-03-02T12:00:00Z"]) == 0
        worker.wait_for(lambda: "indicators reloaded from" in worker.log_text(), "the indicator reload")
        assert metric(worker.metrics(), "fundflow_indicators") == 1
        produce(worker.bootstrap, names, loan_cashed_out(1))
        worker.wait_for(lambda: "U1" in warnings("shared-indicator"), "a shared_indicator warning after the reload")
        (found,) = [w for w in warnings_in_topic(worker.bootstrap, names["warnings_topic"])
                    if w["rule_id"] == "shared-indicator"]
        assert found["txn_ids"] == ["t-1"] and found["evidence"]["sources"] == ["lender-a"]

        # Swapped in whole (written beside the directory, which the reload check reads file by file): written in
        # place, the file would pass through an empty state first, and a check between the two writes would
        # refuse both (two failed reloads, both right).
        (tmp_path / "indicators.partial").write_text("{half-written")
        (tmp_path / "indicators.partial").replace(shared / "indicators.json")
        worker.wait_for(lambda: "indicators in" in worker.log_text() and "not reloaded" in worker.log_text(),
                        "the refusal of a broken set")
        produce(worker.bootstrap, names, loan_cashed_out(2))
        worker.wait_for(lambda: "U2" in warnings("shared-indicator"), "detection to go on with the last good set")
        text = worker.metrics()
        assert metric(text, "fundflow_indicator_reloads_total", result="ok") == 1
        assert metric(text, "fundflow_indicator_reloads_total", result="failed") == 1
        assert warnings("shared-indicator") == {"U1", "U2"}
        assert worker.runs[-1].poll() is None
    finally:
        worker.stop_all()
