"""Hot rule reload in a running worker: a threshold change takes effect with a new rule_version, a broken
rule file is refused with its file:line while the worker keeps detecting with the last good set.

Loans are withdrawn to a bank card ten minutes after disbursement: 98% of one (over the shipped 80%
rapid-cashout threshold) and 75% of the others (under it until the threshold is lowered to 70%).
"""

from __future__ import annotations

from worker_harness import copy_rules, make_worker_env, metric, produce, warnings_in_topic

from stream.detection.rulebook import load_rules

BASE_TS = 1_772_446_500_000  # 2026-03-02T10:15:00Z


def loan_cashed_out(n: int, withdrawn: str) -> list[dict]:
    ts = BASE_TS + n * 3_600_000
    return [{"type": "disbursement", "event_id": f"d-{n}", "ts": ts, "loan_id": f"L-{n}", "account": f"U{n}",
             "amount": "5000.00", "currency": "CNY"},
            {"type": "transfer", "event_id": f"t-{n}", "ts": ts + 600_000, "src": f"U{n}", "dst": f"card:{n}",
             "amount": withdrawn, "currency": "CNY", "channel": "withdrawal"}]


def test_threshold_change_is_picked_up_and_a_broken_file_keeps_the_old_rules(kafka_broker, tmp_path, unique,
                                                                              free_port):
    rules_dir = copy_rules(tmp_path)
    old_version = load_rules(rules_dir).by_id("rapid-cashout").version
    worker = make_worker_env(kafka_broker, tmp_path, unique, free_port, rules_dir, rules_reload_interval="300ms")
    names = worker.names

    def cashout_warnings() -> dict[str, str]:
        return {w["subject"]: w["rule_version"] for w in warnings_in_topic(worker.bootstrap, names["warnings_topic"])
                if w["rule_id"] == "rapid-cashout"}

    try:
        worker.start()
        worker.wait_for(worker.ready, "the worker to be ready")
        produce(worker.bootstrap, names, loan_cashed_out(0, "4900.00") + loan_cashed_out(1, "3750.00"))
        worker.wait_for(lambda: "L-0" in cashout_warnings(), "the 98% cash-out warning")

        cashout = rules_dir / "cashout.yaml"
        cashout.write_text(cashout.read_text().replace("min_ratio: 0.8", "min_ratio: 0.7", 1))
        new_version = load_rules(rules_dir).by_id("rapid-cashout").version
        assert new_version != old_version
        worker.wait_for(lambda: "rules reloaded from" in worker.log_text(), "the reload")
        assert "params.min_ratio: 0.8 -> 0.7 (loosened)" in worker.log_text()
        produce(worker.bootstrap, names, loan_cashed_out(2, "3750.00"))
        worker.wait_for(lambda: "L-2" in cashout_warnings(), "a 75% cash-out warning under the new threshold")

        broken = rules_dir / "broken.yaml"
        broken.write_text("rules:\n  - rule: half-written\n    kind: rapid_cashout\n    desc: x\n"
                          "    severity: catastrophic\n")
        worker.wait_for(lambda: "not reloaded" in worker.log_text(), "the refusal of the broken file")
        log = worker.log_text()
        assert f"{broken}:5" in log, log[-3000:]
        produce(worker.bootstrap, names, loan_cashed_out(3, "3750.00"))
        worker.wait_for(lambda: "L-3" in cashout_warnings(), "detection to go on with the last good rules")

        assert cashout_warnings() == {"L-0": old_version, "L-2": new_version, "L-3": new_version}
        text = worker.metrics()
        assert metric(text, "fundflow_rule_reloads_total", result="ok") == 1
        assert metric(text, "fundflow_rule_reloads_total", result="failed") == 1
        assert worker.runs[-1].poll() is None
    finally:
        worker.stop_all()
