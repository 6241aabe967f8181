"""Fault injection against the real stack: a real broker, a ClickHouse server of this test's own (stopped and
started again mid-run), a real HTTP webhook that fails, throttles and stalls, SIGKILLs of the worker, a broken
rule file, and poison messages in the input topics.

Checked at the end, against an offline replay (`stream.offline.replay.replay_lines`, what `fundflow replay` runs) of
exactly what was produced: the stored warning ids equal the replay's, no id is paged twice, every high
warning is paged, every poison message is in the dead-letter topic with its reason, and no agent crashed.

The short version runs in CI. `make faults` runs the long one (FUNDFLOW_FAULTS=long: a bigger ledger, more
kills, more poison) and prints its figures; docs/operations-recovery.md quotes them.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from kafka import KafkaProducer
from test_pager import SECRET, Webhook
from worker_harness import copy_rules, make_worker_env, read_topic

from stream.dev import devstack
from stream.detection.detector import Detector
from stream.offline.replay import replay_lines
from stream.detection.rulebook import load_rules
from stream.settings import load_settings
from stream.simulate import simulate
from stream.simulate.params import SimParams
from stream.sinks.factory import open_store
from stream.worker.deadletter import headers_dict

DAY_MS = 86_400_000


@dataclass(frozen=True)
class Plan:
    seed: int
    days: int
    background_per_day: int
    instances: int
    kills: int              # SIGKILLs of the worker; the ClickHouse outage spans one of them
    poison_rounds: int      # each round puts one of every kind of poison message in the input
    accounts: int = 400


SHORT = Plan(seed=11, days=2, background_per_day=700, instances=2, kills=2, poison_rounds=1)
LONG = Plan(seed=12, days=5, background_per_day=3000, instances=4, kills=5, poison_rounds=4, accounts=2000)


def poison(round_no: int, ledger_start_ms: int) -> list[tuple[bytes, bytes, str]]:
    """(key, value, the reason the worker must give) of every kind of hostile message."""
    def event(**fields) -> dict:
        return {"type": "transfer", "event_id": f"poison-{round_no}-{fields.pop('tag')}",
                "ts": ledger_start_ms + DAY_MS // 2, "src": "P1", "dst": "P2", "amount": "10.00", **fields}

    nested = "[" * 1000 + "]" * 1000
    cases = [
        (b"several-mb", json.dumps(event(tag="mb", memo="m" * 3_000_000)).encode(), "message_too_large"),
        (b"deep", json.dumps(event(tag="deep"))[:-1].encode() + f', "event_id": {nested}}}'.encode(), "too_deep"),
        (b"deep-amount", json.dumps(event(tag="deep2"))[:-1].encode() + f', "amount": {nested}}}'.encode(),
         "too_deep"),
        (b"huge-loan", json.dumps({"type": "disbursement", "event_id": f"poison-{round_no}-loan", "ts":
                                   ledger_start_ms + DAY_MS // 2, "account": "P1", "amount": "900.00",
                                   "loan_id": "L" * 400_000}).encode(), "message_too_large"),
        (b"long-field", json.dumps(event(tag="long", device_id="d" * 60_000)).encode(), "field_too_long"),
        (b"far-future", json.dumps(event(tag="future", ts=ledger_start_ms + 30 * DAY_MS)).encode(),
         "absurd_timestamp"),
        (b"too-old", json.dumps(event(tag="old", ts=ledger_start_ms - 10 * DAY_MS)).encode(), "too_old"),
        (b"garbage", b"\xff\xfe\x00garbage{{", "malformed_json"),
        (b"currency", json.dumps(event(tag="cur", currency="人民币")).encode(), "wrong_type"),
    ]
    return [(key + f"-{round_no}".encode(), value, reason) for key, value, reason in cases]


def produce_mixed(bootstrap: str, names: dict, events: list[dict], poison_messages, lines: list[bytes]) -> None:
    """Events keyed by account to their topic, with poison spread evenly through them (to the transfers
    topic); every value sent is appended to `lines`, in order, for the offline replay."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, max_request_size=20_000_000)
    every = max(1, len(events) // (len(poison_messages) + 1))
    queue = list(poison_messages)
    try:
        for n, item in enumerate(events, start=1):
            value = json.dumps(item).encode()
            topic = names["disbursements_topic"] if item["type"] == "disbursement" else names["transfers_topic"]
            producer.send(topic, key=(item.get("account") or item["src"]).encode(), value=value)
            lines.append(value)
            if n % every == 0 and queue:
                key, bad, _ = queue.pop(0)
                producer.send(names["transfers_topic"], key=key, value=bad)
                lines.append(bad)
        for key, bad, _ in queue:
            producer.send(names["transfers_topic"], key=key, value=bad)
            lines.append(bad)
        producer.flush(timeout=60)
    finally:
        producer.close()


def offline_replay(lines: list[bytes], rules_dir: Path) -> list:
    defaults = load_settings(None, env={})
    detector = Detector(load_rules(rules_dir), window_ms=defaults.window, lateness_ms=defaults.allowed_lateness)
    warnings: list = []
    replay_lines(lines, detector, warnings.append)
    return warnings


def stored_ids(url: str) -> set[str]:
    try:
        with open_store(url) as store:
            rows = store.query(f"SELECT DISTINCT warning_id FROM `{store.database}`.warnings")
    except Exception:  # noqa: BLE001 - the table may not exist yet, or the server is down on purpose
        return set()
    return {row["warning_id"] for row in rows}


def test_kills_outages_a_failing_webhook_and_poison_lose_nothing(kafka_broker, tmp_path, unique, free_port):
    plan = LONG if os.environ.get("FUNDFLOW_FAULTS") == "long" else SHORT
    events, _ = simulate(SimParams(seed=plan.seed, accounts=plan.accounts, days=plan.days, instances=plan.instances,
                                   background_per_day=plan.background_per_day))
    events = list(events)
    start_ms = min(_ts(e) for e in events)
    poison_messages = [m for r in range(plan.poison_rounds) for m in poison(r, start_ms)]
    rules_dir = copy_rules(tmp_path)

    clickhouse = devstack.start_clickhouse(workdir=tmp_path / "clickhouse")
    store_url = f"clickhouse://{clickhouse.host}:{clickhouse.port}/{unique('ff_faults_')}"
    webhook = Webhook(lambda: time.time_ns() // 1_000_000)
    webhook.script = ([(500, {}, b"boom")] * 3 + [(429, {"Retry-After": "1"}, b"slow down")]
                      + [(200, {"X-Delay": "1.5"}, b"slow")] * 3)   # slow, within the 2 s timeout
    # (A webhook slower than webhook_timeout gets the page again after the retry: HTTP cannot tell a lost
    # request from a slow one. Receivers drop the repeat by X-Fundflow-Warning-Id; docs/sinks.md.)
    worker = make_worker_env(kafka_broker, tmp_path, unique, free_port, rules_dir, clickhouse_url=store_url,
                             webhook_url=webhook.url, webhook_secret=SECRET, page_storm_limit="100000",
                             webhook_timeout="2s", sink_retry_max="2s")
    names = worker.names
    parts = _split(events, plan.kills + 1)
    poison_parts = _split(poison_messages, plan.kills + 1)
    produced: list[bytes] = []
    outage_at = plan.kills // 2          # the kill that happens while ClickHouse is down
    broken_rule = rules_dir / "broken.yaml"
    try:
        for run in range(plan.kills + 1):
            produce_mixed(worker.bootstrap, names, parts[run], poison_parts[run], produced)
            progress = len(stored_ids(store_url))
            process = worker.start()
            if run == 1:
                worker.wait_for(worker.ready, "the worker to be ready (its rules loaded)", deadline_s=60)
                broken_rule.write_text("rules:\n  - id: broken\n    kind: fan_in\n    params: {min_sources: [\n")
                worker.wait_for(lambda: "not reloaded, still running version" in worker.log_text()
                                and "broken.yaml:" in worker.log_text(), "the broken rule file to be refused")
            if run == plan.kills:
                break
            worker.wait_for(lambda: len(stored_ids(store_url)) > progress, "more warnings stored before the kill",
                            deadline_s=90)
            if run == outage_at:
                clickhouse.stop()
                time.sleep(3)                     # the worker keeps detecting; the sink retries
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)
            if run == outage_at:
                clickhouse = devstack.start_clickhouse(tcp_port=clickhouse.port, http_port=clickhouse.http_port,
                                                       workdir=tmp_path / "clickhouse")
            if broken_rule.exists():
                broken_rule.unlink()              # a worker does not start on a broken rules directory

        reference = offline_replay(produced, rules_dir)
        expected = {w.warning_id for w in reference}
        to_page = {w.warning_id for w in reference if "pager" in w.notify and w.severity in ("high", "critical")}
        assert len(expected) >= 30 and len(to_page) >= 10, "the ledger must plant enough patterns"
        worker.wait_for(lambda: stored_ids(store_url) >= expected, "every expected warning stored", deadline_s=180)

        def paged() -> Counter:
            """Pages per warning id the webhook took. A request whose sender died before the answer (SIGKILL
            mid-request) is sent again after the restart: HTTP cannot tell the sender whether it arrived, so a
            receiver drops that repeat by X-Fundflow-Warning-Id; such requests are counted apart."""
            return Counter(json.loads(r["body"])["warning_id"] for r in list(webhook.requests)
                           if b'"warning_id"' in r["body"] and r["answered"] == 200)
        worker.wait_for(lambda: set(paged()) >= to_page, "every high warning paged", deadline_s=120)
        poison_keys = {key for key, _, _ in poison_messages}

        def dead_lettered() -> dict[bytes, str]:
            return {r.key: headers_dict(r.headers)["fundflow.reason"]
                    for r in read_topic(worker.bootstrap, names["deadletter_topic"]) if r.key in poison_keys}
        worker.wait_for(lambda: set(dead_lettered()) >= poison_keys, "every poison message dead-lettered",
                        deadline_s=60)
        time.sleep(2)                              # any late duplicate page would show now

        stored = stored_ids(store_url)
        pages = paged()
        unanswered = sum(1 for r in list(webhook.requests) if r["answered"] is None)
        reasons = dead_lettered()
        logs = "\n".join(worker.log_text(n) for n in range(len(worker.runs)))
        figures = {
            "warnings lost": len(expected - stored),
            "warnings not in the replay": len(stored - expected),
            "double pages": sum(1 for count in pages.values() if count > 1),
            "high warnings unpaged": len(to_page - set(pages)),
            "poison messages not dead-lettered": len(poison_keys - set(reasons)),
            "agent crashes": logs.count("Crashed") + logs.count("Agent error"),
        }
        print(f"\nfault injection ({'long' if plan is LONG else 'short'}): {len(produced)} messages, "
              f"{len(poison_messages)} poison, {plan.kills} SIGKILLs, a ClickHouse outage, webhook 500/429/slow, "
              f"a broken rule file; {len(expected)} warnings, {len(to_page)} to page; "
              + ", ".join(f"{name} {value}" for name, value in figures.items())
              + f"; requests whose sender was killed before the answer {unanswered}")
        assert all(value == 0 for value in figures.values()), figures
        wrong = {key: (reason, want) for key, _, want in poison_messages
                 if (reason := reasons[key]) != want}
        assert not wrong, f"poison dead-lettered with the wrong reason: {wrong}"
        assert worker.ready()
    finally:
        worker.stop_all()
        webhook.close()
        clickhouse.stop()


def _ts(event: dict) -> int:
    from stream.model.timefmt import parse_rfc3339_ms
    return parse_rfc3339_ms(event["ts"]) if isinstance(event["ts"], str) else int(event["ts"])


def _split(items: list, parts: int) -> list[list]:
    size = -(-len(items) // parts)
    return [items[i * size:(i + 1) * size] for i in range(parts)]
