"""Evidence bundles from a store filled by a real `fundflow worker` on the real broker: one run on the embedded
store (chDB), one on a ClickHouse 18.16 server with a crash between the warnings insert and their chain records.

Each run is reused for several checks: the store's chain audits clean, every warning's bundle exports and
verifies against the worker's published key (and replays to the same warning), one flipped byte in any file of
a bundle fails verify naming that file, an altered warning row and a deleted chain row are found by the audit.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
import textwrap
import time
from pathlib import Path

import orjson

from worker_harness import committed_everything, copy_rules, make_worker_env, metric, produce, warning_ids

from stream.detection.detector import Detector
from stream.dev.worker_process import WorkerProcess
from stream.evidence.keys import default_key_path, load_signing_key, public_pem
from stream.model.events import parse_event
from stream.model.warning import EarlyWarning
from stream.offline import evidence_bundle as bundle
from stream.offline.evidence_audit import audit_store
from stream.detection.rulebook import load_rules
from stream.settings import load_settings
from stream.simulate import simulate
from stream.simulate.params import SimParams
from stream.sinks import evidence_tables as tables
from stream.sinks.factory import open_store
from stream.sinks.schema import warning_to_row

CRASHING_WORKER = textwrap.dedent("""
    import os, sys
    from stream.sinks import chain

    def crash(self, items):       # the warnings of the batch are stored; their chain records never are
        print(f"crashing before chaining {len(items)} warnings", flush=True)
        os._exit(3)

    chain.EvidenceChain.append = crash
    from stream.cli import main
    sys.exit(main(["worker", "--loglevel", "info"]))
""")


def ledger() -> list[dict]:
    events, _ = simulate(SimParams(seed=3, accounts=300, days=2, instances=2, background_per_day=800))
    return list(events)


def reference_warnings(events: list[dict], rules_dir: Path) -> set[str]:
    defaults = load_settings(None, env={})
    detector = Detector(load_rules(rules_dir), window_ms=defaults.window, lateness_ms=defaults.allowed_lateness)
    parsed = sorted((parse_event(json.dumps(e).encode()) for e in events), key=lambda e: e.ts)
    return {w.warning_id for event in parsed for w in detector.process(event)}


def check_bundles(store, key_pem: bytes, settings, *, replay_all: bool) -> dict:
    """Every stored warning's bundle verifies; returns figures (export time, sizes, replays that reproduce)."""
    ids = sorted(r.warning_id for r in tables.records(store))
    figures = {"warnings": len(ids), "replayed": 0, "not_reproduced": [], "export_s": [], "bundle_bytes": []}
    for warning_id in ids:
        started = time.perf_counter()
        data = bundle.build_bundle(store, warning_id, settings)
        figures["export_s"].append(time.perf_counter() - started)
        figures["bundle_bytes"].append(len(data))
        plain = bundle.verify_bundle(data, public_key_pem=key_pem)
        assert plain.ok, plain.render()
        if replay_all:
            replayed = bundle.verify_bundle(data, public_key_pem=key_pem, replay=True)
            if replayed.ok:
                figures["replayed"] += 1
            else:
                assert replayed.failure.name == "replay", replayed.render()
                kind = orjson.loads(bundle.unpack(data)[bundle.WARNING])["kind"]
                figures["not_reproduced"].append((kind, warning_id, replayed.failure.detail))
    return figures


def flip_every_file(store, warning_id: str, settings) -> None:
    files = bundle.unpack(bundle.build_bundle(store, warning_id, settings))
    for name in files:
        altered = dict(files)
        data = bytearray(altered[name])
        data[len(data) // 2] ^= 0x20
        altered[name] = bytes(data)
        manifest = altered.pop(bundle.MANIFEST)
        result = bundle.verify_bundle(bundle.pack(altered, manifest))
        assert not result.ok and result.failure.file == name, (name, result.render())


def tamper_and_audit(store) -> None:
    records = tables.records(store)
    victim = records[len(records) // 2]
    row = store.warning_by_id(victim.warning_id)
    warning = EarlyWarning.from_dict({**orjson.loads(tables.canonical_row_json(row)), "summary": "nothing to see"})
    store.insert_rows([warning_to_row(warning, int(row["inserted_ms"]) + 1)])
    report = audit_store(store)
    assert any(victim.warning_id in p and "warning row was altered" in p for p in report.problems), report.render()
    partition = records[0].partition
    first = next(r for r in records if r.partition == partition and r.seq == 2)
    store.execute(f"ALTER TABLE `{store.database}`.chain DELETE WHERE outbox_partition = {partition} AND seq = 2")
    deadline = time.monotonic() + 30
    while tables.record_of(store, first.warning_id) is not None and time.monotonic() < deadline:
        time.sleep(0.2)
    report = audit_store(store)
    assert f"gap in partition {partition}: seq 2 missing (a deleted chain record)" in report.problems, report.render()


def test_evidence_of_a_real_worker_run_on_the_embedded_store(kafka_broker, tmp_path, unique, free_port, capsys):
    events = ledger()
    rules_dir = copy_rules(tmp_path)
    expected = reference_warnings(events, rules_dir)
    worker = make_worker_env(kafka_broker, tmp_path, unique, free_port, rules_dir, evidence_checkpoint_records="7",
                             evidence_checkpoint_interval="1s")
    names = worker.names
    topics = [names["disbursements_topic"], names["transfers_topic"], names["warnings_topic"]]
    try:
        produce(worker.bootstrap, names, events)
        worker.start()
        worker.wait_for(lambda: expected <= set(warning_ids(worker.bootstrap, names["warnings_topic"]))
                        and committed_everything(worker.bootstrap, names["app_id"], topics),
                        "every warning published, stored and chained (outbox offsets committed)", deadline_s=120)
        time.sleep(3)                      # the checkpoint timer signs the last partial tail within 1 s
        text = worker.metrics()
        assert metric(text, "fundflow_evidence_records_total") == len(expected), text[-2000:]
        assert metric(text, "fundflow_evidence_checkpoints_total") >= len(expected) // 7
        assert metric(text, "fundflow_evidence_index_events") > 0
    finally:
        worker.stop_all()
    settings = load_settings(None, env={})
    key = load_signing_key(default_key_path(tmp_path / "data"))
    key_pem = public_pem(key.public).encode()
    with open_store(f"chdb://{tmp_path / 'chdb'}", create=False) as store:
        report = audit_store(store, public_key_pem=key_pem, strict=True)
        assert report.ok, report.render()
        assert {r.warning_id for r in tables.records(store)} == expected
        figures = check_bundles(store, key_pem, settings, replay_all=True)
        assert figures["replayed"] >= len(expected) // 2, figures["not_reproduced"][:5]
        flip_every_file(store, sorted(expected)[0], settings)
        tamper_and_audit(store)
    with capsys.disabled():
        export = sorted(figures["export_s"])
        print(f"\nchDB: {figures['warnings']} warnings, every bundle verified, {figures['replayed']} reproduced by "
              f"--replay; export p50 {export[len(export) // 2] * 1000:.1f} ms, bundle p50 "
              f"{sorted(figures['bundle_bytes'])[len(export) // 2]:,} bytes")
        kinds = Counter(kind for kind, _, _ in figures["not_reproduced"])
        print(f"  not reproduced from the cited events alone, by kind: {dict(sorted(kinds.items()))}")
        for kind, warning_id, detail in figures["not_reproduced"][:3]:
            print(f"  e.g. {kind} {warning_id}: {detail[:160]}")


def test_evidence_on_a_clickhouse_server_survives_a_crash_between_the_warning_and_its_chain_record(
        kafka_broker, clickhouse_server, tmp_path, unique, free_port):
    events = ledger()[:700]
    rules_dir = copy_rules(tmp_path)
    expected = reference_warnings(events, rules_dir)
    assert len(expected) >= 5
    database = unique("it_evidence_")
    url = f"clickhouse://{clickhouse_server.host}:{clickhouse_server.port}/{database}"
    worker = make_worker_env(kafka_broker, tmp_path, unique, free_port, rules_dir, clickhouse_url=url,
                             evidence_checkpoint_records="4", evidence_checkpoint_interval="1s")
    names = worker.names
    topics = [names["disbursements_topic"], names["transfers_topic"], names["warnings_topic"]]
    script = tmp_path / "crashing_worker.py"
    script.write_text(CRASHING_WORKER)
    try:
        produce(worker.bootstrap, names, events)
        crashing = WorkerProcess.start(worker.env, tmp_path / "crashing.log", free_port,
                                       command=[sys.executable, str(script)], cwd=tmp_path)
        deadline = time.monotonic() + 90
        while crashing.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert crashing.returncode == 3, crashing.log_tail()
        with open_store(url) as store:
            stored = store.count_distinct()
            report = audit_store(store)
            assert stored > 0 and not tables.records(store) and report.unchained == stored, report.render()
            assert report.ok and not audit_store(store, strict=True).ok

        worker.start()
        key_pem = public_pem(load_signing_key(default_key_path(tmp_path / "data")).public).encode()

        def caught_up() -> bool:
            if not committed_everything(worker.bootstrap, names["app_id"], topics):
                return False
            with open_store(url) as store:
                return audit_store(store, public_key_pem=key_pem, strict=True).ok \
                    and {r.warning_id for r in tables.records(store)} == expected
        worker.wait_for(caught_up, "the restarted worker to chain and sign every warning", deadline_s=120)
        with open_store(url) as store:
            figures = check_bundles(store, key_pem, load_settings(None, env={}), replay_all=False)
            assert figures["warnings"] == len(expected)
            flip_every_file(store, sorted(expected)[-1], load_settings(None, env={}))
            tamper_and_audit(store)
    finally:
        worker.stop_all()
