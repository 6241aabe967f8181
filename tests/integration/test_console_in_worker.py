"""console_in_worker: a real `fundflow worker` serves the console from its own process, so analysts read and label
the warnings while the worker runs. With the embedded chDB store the worker holds the store's lock (no other
process can open it) and shares the store with the console; with a ClickHouse server the console has its own
connection. Either way the labels are in the store after the worker stops."""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest
from test_recovery import reference_run
from worker_harness import copy_rules, make_worker_env, produce

from stream.simulate import simulate
from stream.simulate.params import SimParams
from stream.sinks.factory import open_store

TOKEN = "worker-console-token-0001"


@pytest.mark.parametrize("kind", ["chdb", "server"])
def test_the_worker_serves_the_console_over_its_store_while_it_runs(kind, kafka_broker, tmp_path, unique, free_port,
                                                                     request):
    from conftest import free_port as another_port

    events, _ = simulate(SimParams(seed=5, accounts=200, days=1, instances=1, background_per_day=500))
    events = list(events)
    rules_dir = copy_rules(tmp_path)
    expected = {w.warning_id for w in reference_run(events, rules_dir)}
    assert len(expected) >= 5
    console_port = another_port()
    url = f"chdb://{tmp_path / 'chdb'}"
    if kind == "server":
        server = request.getfixturevalue("clickhouse_server")
        url = f"clickhouse://127.0.0.1:{server.port}/{unique('inworker')}"
    worker = make_worker_env(kafka_broker, tmp_path, unique, free_port, rules_dir, console_in_worker="true",
                             console_port=str(console_port), console_tokens=f"ana:analyst:{TOKEN}",
                             clickhouse_url=url)
    base = f"http://127.0.0.1:{console_port}"
    auth = {"Authorization": f"Bearer {TOKEN}"}

    def listed() -> set[str]:
        try:
            answer = httpx.get(f"{base}/api/warnings?limit=500", headers=auth, timeout=5)
        except httpx.HTTPError:
            return set()
        return {w["warning_id"] for w in answer.json()["warnings"]} if answer.status_code == 200 else set()

    try:
        produce(worker.bootstrap, worker.names, events)
        process = worker.start()
        worker.wait_for(lambda: listed() == expected, "every warning of the run listed by the worker's console",
                        deadline_s=90)
        assert "console on http://127.0.0.1:" in worker.log_text()
        assert httpx.get(f"{base}/api/warnings", timeout=5).status_code == 401
        if kind == "chdb":
            other = subprocess.run([sys.executable, "-c", "import sys; from stream.sinks.factory import open_store; "
                                    "open_store(sys.argv[1], create=False).close()", url],
                                   capture_output=True, text=True, timeout=60)
            assert other.returncode != 0 and "Cannot lock file" in other.stderr    # the store is the worker's alone
        wid = sorted(expected)[0]
        labelled = httpx.post(f"{base}/api/warnings/{wid}/labels", headers=auth, json={"status": "confirmed"},
                              timeout=10)
        assert labelled.status_code == 201, labelled.text
        assert httpx.get(f"{base}/api/warnings/{wid}", headers=auth, timeout=10).json()["triage"]["status"] == \
            "confirmed"
        process.stop()
    finally:
        worker.stop_all()
    with open_store(url, create=False) as store:
        assert store.count_distinct() == len(expected)
        rows = store.query(f"SELECT warning_id, status_to, actor FROM {store.database}.warning_labels")
    assert rows == [{"warning_id": wid, "status_to": "confirmed", "actor": "ana"}]
