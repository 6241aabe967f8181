"""The analyst console over 1,000,000 warnings in a ClickHouse server: how long the queue and a warning page take
to answer over HTTP (run alone: `python -m bench.console [--warnings N] [--runs N]`).

A local ClickHouse server (stream.dev.devstack, the system's `clickhouse-server`) gets N synthetic warnings in
the real warnings table, made server-side by one INSERT ... SELECT FROM numbers(N): 9 rules, 3 severities,
subjects over 200,000 loans, three accounts each among 50,000, one warning every 0.6 s of event time, a
two-hop path in the evidence; and 1,000 label events. The console is served by uvicorn on a free port in this
process, and each page is asked `--runs` times after one warm-up request, over HTTP with a bearer token.
Figures: median and p95 wall time per request; target: under 200 ms for the queue and the warning page.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TARGET_MS = 200.0
TOKEN = "bench-console-token-000001"
RULES = ["rapid-cashout", "layering-chain", "loan-fan-in", "loan-fan-out", "device-burst", "gather-scatter",
         "scatter-gather", "round-trip", "round-trip-pair"]
KINDS = ["rapid_cashout", "layering", "fan_in", "fan_out", "device_burst", "gather_scatter", "scatter_gather",
         "cycle", "cycle"]
BASE_MS = 1_772_323_200_000          # 2026-03-01T00:00:00Z


def fill(store, n: int) -> None:
    from stream.sinks import labels
    from stream.sinks.schema import COLUMNS
    from stream.sinks.store import identifier, literal

    store.ensure_schema()
    labels.ensure_labels_table(store)
    acc = ["concat('U', toString(number % 50000))", "concat('U', toString((number * 7 + 1) % 50000))",
           "concat('U', toString((number * 13 + 2) % 50000))"]
    values = {
        "warning_id": "concat('w-', lower(hex(sipHash64(number))))",
        "rule_id": f"arrayElement({literal(RULES)}, number % 9 + 1)", "rule_version": "'1'",
        "kind": f"arrayElement({literal(KINDS)}, number % 9 + 1)",
        "severity": "arrayElement(['low', 'medium', 'high'], number % 3 + 1)", "severity_rank": "number % 3",
        "score": "(number % 1000) / 1000", "subject": "concat('L-', toString(number % 200000))",
        "accounts": f"[{', '.join(acc)}]", "loan_ids": "[concat('L-', toString(number % 200000))]",
        "txn_ids": "[concat('d-', toString(number)), concat('t-', toString(number))]",
        "amount_minor": "toInt64(100000 + number % 1000000)", "currency": "'CNY'",
        "first_ts_ms": f"toUInt64({BASE_MS} + number * 600)", "event_ts_ms": f"toUInt64({BASE_MS} + number * 600 + 600000)",
        "detected_at_ms": f"toUInt64({BASE_MS} + number * 600 + 600350)",
        "summary": "concat('synthetic benchmark warning ', toString(number))",
        "evidence": f"concat('{{\"hops\":2,\"paths\":[[\"', {acc[0]}, '\",\"', {acc[1]}, '\",\"card:', "
                    f"toString(number), '\"]]}}')",
        "notify": "['pager']", "inserted_ms": "toUInt64(1)",
    }
    db = identifier(store.database)
    store.execute(f"INSERT INTO {db}.warnings ({', '.join(COLUMNS)}) SELECT "
                  f"{', '.join(values[c] for c in COLUMNS)} FROM system.numbers LIMIT {int(n)}")
    store.execute(f"INSERT INTO {db}.{labels.TABLE} ({', '.join(labels.COLUMNS)}) SELECT "
                  f"concat('l-', toString(number)), concat('w-', lower(hex(sipHash64(number * 997)))), "
                  f"toUInt64({BASE_MS} + number * 1000), 'bench', 'analyst', 'open', "
                  f"arrayElement(['confirmed', 'false_positive', 'investigating'], number % 3 + 1), '', 'bench', '' "
                  f"FROM system.numbers LIMIT 1000")


def timed(client, url: str, runs: int) -> list[float]:
    client.get(url).raise_for_status()                     # warm-up
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        response = client.get(url)
        samples.append((time.perf_counter() - start) * 1000)
        response.raise_for_status()
    return samples


def main(argv: list[str] | None = None) -> int:
    import httpx
    import uvicorn

    from stream.console.app import create_app
    from stream.console.auth import Tokens
    from stream.console.queries import Console
    from stream.console.server import bound_socket
    from stream.dev import devstack
    from stream.sinks.factory import open_store

    parser = argparse.ArgumentParser(prog="python -m bench.console")
    parser.add_argument("--warnings", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args(argv)

    server = devstack.start_clickhouse()
    try:
        store = open_store(server.url.rsplit("/", 1)[0] + "/bench_console")
        started = time.perf_counter()
        fill(store, args.warnings)
        count = store.count_distinct()
        version = store.query("SELECT version() AS v")[0]["v"]
        print(f"ClickHouse {version}: {count:,} warnings stored in {time.perf_counter() - started:.1f} s")
        started = time.perf_counter()
        console = Console(store, rules_dir=str(Path(__file__).resolve().parents[1] / "rules"))
        print(f"console views (console_queue, console_keys) created and populated in "
              f"{time.perf_counter() - started:.1f} s")
        app = create_app(console, Tokens.from_settings(f"bench:supervisor:{TOKEN}", None))
        sock = bound_socket("127.0.0.1", 0)
        web = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        threading.Thread(target=web.run, kwargs={"sockets": [sock]}, daemon=True).start()
        while not web.started:
            time.sleep(0.05)
        base = f"http://127.0.0.1:{sock.getsockname()[1]}"
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60) as client:
            newest = client.get("/api/warnings?limit=1").json()["warnings"][0]
            deep = client.get("/api/warnings?limit=50&before=" + f"{newest['event_ts_ms'] - 600 * 500_000}:w-")
            deep_cursor = deep.json()["next"]
            middle = deep.json()["warnings"][0]["warning_id"]
            cases = [
                ("queue: first page", "/", True),
                ("queue: rule filter", "/?rule=layering-chain", True),
                ("queue: severity + account", "/?severity=high&account=U123", True),
                ("queue: status confirmed", "/?status=confirmed", True),
                ("queue: a page halfway down", f"/?before={deep_cursor}", True),
                ("warning page: the newest", f"/warnings/{newest['warning_id']}", True),
                ("warning page: halfway down", f"/warnings/{middle}", True),
                ("api: GET /api/warnings", "/api/warnings", False),
                ("api: GET /api/warnings/<id>", f"/api/warnings/{middle}", False),
                ("rules page", "/rules", False),
            ]
            print(f"{'request':34} {'median':>9} {'p95':>9}  target")
            worst = 0.0
            for name, url, targeted in cases:
                samples = sorted(timed(client, url, args.runs))
                median = statistics.median(samples)
                p95 = samples[min(len(samples) - 1, int(round(0.95 * (len(samples) - 1))))]
                mark = (f"< {TARGET_MS:.0f} ms {'ok' if p95 < TARGET_MS else 'MISSED'}") if targeted else "-"
                if targeted:
                    worst = max(worst, p95)
                print(f"{name:34} {median:7.1f} ms {p95:7.1f} ms  {mark}")
        print(f"slowest p95 of the targeted pages: {worst:.1f} ms (target {TARGET_MS:.0f} ms)")
        web.should_exit = True
        store.close()
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
