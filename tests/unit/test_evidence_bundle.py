"""Evidence bundles and the chain audit against a real embedded store (chDB), filled the way the worker fills it:
the handler's evidence index, the publisher's headers, the ClickHouse sink's chain writer. (The same with a real
worker process and a ClickHouse server: tests/integration/test_evidence.py.)"""

from __future__ import annotations

import io
import shutil
import time
import zipfile
from pathlib import Path

import orjson
import pytest

from stream.detection.detector import Detector
from stream.evidence.keys import ensure_signing_key, public_pem
from stream.model.warning import EarlyWarning
from stream.offline import evidence_bundle as bundle
from stream.offline.evidence_audit import audit_store
from stream.detection.rulebook import load_rules
from stream.settings import Settings
from stream.sinks import evidence_tables as tables
from stream.sinks.chain import ChainItem, EvidenceChain
from stream.sinks.chdb_store import ChdbStore
from stream.sinks.schema import warning_to_row
from stream.sinks.store import StoreError
from stream.worker.deadletter import Origin
from stream.worker.evidence_index import EvidenceIndex
from stream.worker.handler import MessageHandler
from stream.worker.compose import recorded_settings
from stream.worker.publisher import DETECTOR_HEADER, EVIDENCE_HEADER, RULE_HEADER, decode_evidence, evidence_headers
from warning_samples import LEDGER, PACK

HOUR = 3_600_000


class Message:
    """What the sink agent reads from the outbox: a record with its coordinates and headers."""

    def __init__(self, partition, offset, warning, headers):
        self.partition, self.offset, self.value, self.headers = partition, offset, warning.to_json(), headers


def detect(rules_dir: Path) -> list[Message]:
    """The sample ledger through the worker's handler; each warning as the outbox holds it (two partitions)."""
    handler = MessageHandler(Detector(load_rules(rules_dir)), evidence=EvidenceIndex(72 * HOUR, 300_000))
    messages, settings = [], recorded_settings(Settings())
    for offset, line in enumerate(LEDGER):
        outcome = handler.handle(line.encode(), key=None, origin=Origin("it.transfers", offset % 2, offset))
        for number, warning in enumerate(outcome.warnings):
            messages.append(Message(len(messages) % 2, len(messages) // 2, warning, evidence_headers(outcome, number, settings)))
    return messages


def items(messages: list[Message]) -> list[ChainItem]:
    out = []
    for m in messages:
        headers = dict(m.headers)
        sources, _ = decode_evidence(headers[EVIDENCE_HEADER])
        out.append(ChainItem(m.partition, m.offset, EarlyWarning.from_json(m.value), sources,
                             headers[RULE_HEADER].decode(), headers[DETECTOR_HEADER].decode()))
    return out


def fill(root: Path, rules_dir: Path = PACK, *, every: int = 100) -> tuple[ChdbStore, EvidenceChain, list[ChainItem]]:
    store = ChdbStore(root / "chdb")
    store.ensure_schema()
    chain = EvidenceChain(store, ensure_signing_key(None, root), every=every, interval_ms=60_000)
    chain.ensure_schema()
    batch = items(detect(rules_dir))
    store.insert_rows([warning_to_row(item.warning, 1) for item in batch])
    chain.append(batch)
    chain.sign_due(force=True)
    return store, chain, batch


@pytest.fixture
def filled(tmp_path):
    store, chain, batch = fill(tmp_path)
    try:
        yield store, chain, batch, tmp_path
    finally:
        store.close()


def test_a_batch_re_read_after_a_crash_chains_nothing_twice_and_never_forks(tmp_path):
    store = ChdbStore(tmp_path / "chdb")
    try:
        store.ensure_schema()
        key = ensure_signing_key(None, tmp_path)
        batch = items(detect(PACK))
        assert len(batch) >= 3 and {i.partition for i in batch} == {0, 1}
        # The worker stored the warnings and died before their chain records: the batch is read again.
        store.insert_rows([warning_to_row(item.warning, 1) for item in batch])
        first = EvidenceChain(store, key)
        first.ensure_schema()
        assert audit_store(store).unchained == len(batch)
        store.insert_rows([warning_to_row(item.warning, 2) for item in batch])
        made = first.append(batch)
        assert len(made) == len(batch)
        # Died again after the chain records, before the offsets were committed: nothing new, same heads.
        heads = tables.heads(store, [0, 1])
        assert EvidenceChain(store, key).append(batch) == []
        # The same warning published again later in the outbox: skipped too.
        later = [ChainItem(i.partition, i.offset + 100, i.warning, i.sources, i.rule_text, i.settings_text)
                 for i in batch[:1]]
        assert EvidenceChain(store, key).append(later) == []
        assert tables.heads(store, [0, 1]) == heads
        EvidenceChain(store, key).sign_due([0, 1], force=True)
        report = audit_store(store, public_key_pem=public_pem(key.public).encode(), strict=True)
        assert report.ok, report.render()
        assert [r.seq for r in tables.records(store, 0)] == list(range(1, len(tables.records(store, 0)) + 1))
    finally:
        store.close()


def test_export_then_verify_with_replay_holds_for_every_warning(filled):
    store, chain, batch, root = filled
    key = public_pem(chain.key.public).encode()
    for item in batch:
        data = bundle.build_bundle(store, item.warning.warning_id, Settings())
        assert data == bundle.build_bundle(store, item.warning.warning_id, Settings())    # deterministic
        result = bundle.verify_bundle(data, public_key_pem=key, replay=True)
        assert result.ok, result.render()
        files = bundle.unpack(data)
        assert set(files) == set(bundle.FILES) | {bundle.MANIFEST}
        assert files[bundle.WARNING] == item.warning.to_json()
        report = files[bundle.REPORT].decode()
        assert "<svg" in report and item.warning.warning_id in report and "<script" not in report
        assert all(f"{s.topic} / {s.partition} / {s.offset}" in report for s in item.sources)
    only_bundled = bundle.verify_bundle(data)
    assert only_bundled.ok and "not who signed it" in only_bundled.render()


def test_a_bundle_carries_the_analysts_labels_of_its_warning_and_reading_creates_no_table(filled):
    from stream.sinks import labels

    store, chain, batch, root = filled
    first, second = batch[0].warning.warning_id, batch[1].warning.warning_id
    unlabelled = orjson.loads(bundle.unpack(bundle.build_bundle(store, first, Settings()))[bundle.LABELS])
    assert unlabelled == {"warning_id": first, "chained": False, "events": []}
    assert not labels.exists(store)
    labels.ensure_labels_table(store)
    event = labels.LabelEvent(label_id="l-1", warning_id=first, at_ms=1_772_500_000_000, actor="ana", role="analyst",
                              status_from="open", status_to="confirmed", assignee_from="", assignee_to="ana",
                              note="card seen in two other cases")
    labels.append(store, event)
    data = bundle.build_bundle(store, first, Settings())
    assert orjson.loads(bundle.unpack(data)[bundle.LABELS])["events"] == [event.to_dict()]
    assert bundle.verify_bundle(data, public_key_pem=public_pem(chain.key.public).encode()).ok
    other = orjson.loads(bundle.unpack(bundle.build_bundle(store, second, Settings()))[bundle.LABELS])
    assert other["events"] == []


def _repack(files: dict[str, bytes], manifest: bytes | None = None) -> bytes:
    return bundle.pack({k: v for k, v in files.items() if k != bundle.MANIFEST},
                       manifest if manifest is not None else files[bundle.MANIFEST])


@pytest.mark.parametrize("name", [*bundle.FILES, bundle.MANIFEST])
def test_one_flipped_byte_in_any_file_fails_verify_naming_that_file(filled, name):
    store, chain, batch, _ = filled
    files = bundle.unpack(bundle.build_bundle(store, batch[0].warning.warning_id, Settings()))
    for position in (0, len(files[name]) // 2, len(files[name]) - 2):
        altered = dict(files)
        data = bytearray(altered[name])
        data[position] ^= 0x01
        altered[name] = bytes(data)
        result = bundle.verify_bundle(_repack(altered))
        assert not result.ok and result.failure.file == name, (position, result.render())
        assert name in result.render().splitlines()[-1]


def test_an_altered_file_with_a_forged_manifest_still_fails_on_its_hash_in_the_chain(filled):
    store, chain, batch, _ = filled
    files = bundle.unpack(bundle.build_bundle(store, batch[0].warning.warning_id, Settings()))
    cases = {bundle.WARNING: files[bundle.WARNING].replace(b'"severity":"high"', b'"severity":"low"'),
             bundle.EVENTS: files[bundle.EVENTS].splitlines(keepends=True)[0],
             bundle.SETTINGS: files[bundle.SETTINGS].replace(b'"lifo"', b'"fifo"')}
    for name, forged in cases.items():
        assert forged != files[name]
        altered = {**files, name: forged}
        del altered[bundle.MANIFEST]
        result = bundle.verify_bundle(bundle.pack(altered))
        assert not result.ok and result.failure.file == name, result.render()
    other = ensure_signing_key(None, Path(store.path).parent / "other-key")
    result = bundle.verify_bundle(bundle.pack({k: v for k, v in files.items() if k != bundle.MANIFEST}),
                                  public_key_pem=public_pem(other.public).encode())
    assert not result.ok and result.failure.file == bundle.CHECKPOINT and result.failure.name == "key id"


def test_audit_finds_an_altered_warning_row_and_a_deleted_chain_row(filled):
    store, chain, batch, _ = filled
    assert audit_store(store).ok
    victim = batch[1].warning
    forged = EarlyWarning.from_dict({**victim.to_dict(), "amount": "1.00"})
    store.insert_rows([warning_to_row(forged, 10)])           # the newer copy is what FINAL shows
    report = audit_store(store)
    assert not report.ok and any(victim.warning_id in p and "warning row was altered" in p for p in report.problems)
    with pytest.raises(bundle.BundleError, match="the warning row in the store no longer matches"):
        bundle.build_bundle(store, victim.warning_id, Settings())
    record = tables.records(store, 0)[0]                     # the first of two: the next one is left dangling
    store.execute(f"ALTER TABLE fundflow.chain DELETE WHERE outbox_partition = 0 AND seq = {record.seq}")
    deadline = time.monotonic() + 20
    while tables.record_of(store, record.warning_id) is not None and time.monotonic() < deadline:
        time.sleep(0.1)
    report = audit_store(store)
    assert "gap in partition 0: seq 1 missing (a deleted chain record)" in report.problems, report.render()
    assert any("covers records that are missing" in p for p in report.problems)


def test_audit_reports_the_unsigned_tail_and_fails_on_it_only_when_strict(tmp_path):
    store, chain, batch = fill(tmp_path, every=1000)
    try:
        store.insert_rows([])
        later = [ChainItem(0, 50, EarlyWarning.from_dict({**batch[0].warning.to_dict(), "warning_id": "w-later"}))]
        store.insert_rows([warning_to_row(later[0].warning, 3)])
        chain.append(later)
        report = audit_store(store)
        assert report.ok and report.unsigned == 1 and "unsigned" in report.render()
        assert not audit_store(store, strict=True).ok
    finally:
        store.close()


def test_a_bundle_made_under_an_older_rule_version_still_replays_to_its_warning(tmp_path):
    older = tmp_path / "older-rules"
    shutil.copytree(PACK, older, ignore=shutil.ignore_patterns("*.md", "*.test.yaml"))
    text = (older / "cashout.yaml").read_text()
    (older / "cashout.yaml").write_text(text.replace("min_ratio: 0.8", "min_ratio: 0.75"))
    current = {r.id: r.version for r in load_rules(PACK).rules}
    store, chain, batch = fill(tmp_path, older)
    try:
        old = next(item for item in batch if item.warning.rule_id == "rapid-cashout")
        assert old.warning.rule_version != current["rapid-cashout"]
        result = bundle.verify_bundle(bundle.build_bundle(store, old.warning.warning_id, Settings()), replay=True)
        assert result.ok, result.render()
        assert "replay" in [check.name for check in result.checks]
    finally:
        store.close()


def test_the_commands_key_export_verify_and_audit(filled, monkeypatch, capsys):
    from stream.cli import main
    store, chain, batch, root = filled
    url = f"chdb://{store.path}"
    store.close()                                   # one embedded session per process: the commands open their own
    monkeypatch.setenv("FUNDFLOW_DATA_DIR", str(root))
    assert main(["evidence", "key"]) == 0
    printed = capsys.readouterr().out
    assert chain.key.key_id in printed and "BEGIN PUBLIC KEY" in printed
    (root / "public.pem").write_text(public_pem(chain.key.public))
    case = root / "case.zip"
    assert main(["evidence", "export", batch[0].warning.warning_id, "--out", str(case), "--store", url]) == 0
    assert main(["evidence", "verify", str(case), "--public-key", str(root / "public.pem"), "--replay"]) == 0
    assert "bundle verified" in capsys.readouterr().out
    files = bundle.unpack(case.read_bytes())
    files[bundle.REPORT] = files[bundle.REPORT].replace(b"Evidence", b"Evidenze", 1)
    case.write_bytes(_repack(files))
    assert main(["evidence", "verify", str(case)]) == 1
    assert "report.html" in capsys.readouterr().out.splitlines()[-1]
    assert main(["evidence", "audit", "--store", url]) == 0
    assert "chain intact" in capsys.readouterr().out
    assert main(["evidence", "export", "w-nope", "--out", str(case), "--store", url]) == 1
    assert "no warning 'w-nope'" in capsys.readouterr().err


def test_two_copies_of_a_warning_in_one_batch_chain_once_with_the_copy_the_store_keeps(tmp_path):
    from stream.sinks.writer import dedupe_batch
    store = ChdbStore(tmp_path / "chdb")
    try:
        store.ensure_schema()
        chain = EvidenceChain(store, ensure_signing_key(None, tmp_path))
        chain.ensure_schema()
        first = items(detect(PACK))[0]
        changed = EarlyWarning.from_dict({**first.warning.to_dict(), "summary": "a later copy"})
        batch = [first, ChainItem(first.partition, first.offset + 1, changed, first.sources, first.rule_text)]
        store.insert_rows([warning_to_row(w, 1) for w in dedupe_batch([i.warning for i in batch])])
        made = chain.append(batch)
        chain.sign_due(force=True)
        assert len(made) == 1 and audit_store(store).ok
    finally:
        store.close()


def test_a_checkpoint_covers_at_most_the_configured_number_of_records(tmp_path):
    store, chain, batch = fill(tmp_path, every=2)
    try:
        spans = [(int(c["first_seq"]), int(c["last_seq"])) for c in tables.checkpoints(store)]
        assert spans and all(last - first + 1 <= 2 for first, last in spans)
        assert audit_store(store, strict=True).ok
        for item in batch:
            data = bundle.build_bundle(store, item.warning.warning_id, Settings())
            assert len(orjson.loads(bundle.unpack(data)[bundle.CHAIN])["records"]) <= 2
    finally:
        store.close()


def test_what_is_not_a_bundle_is_refused_in_one_line(monkeypatch):
    assert bundle.verify_bundle(b"not a zip").failure.file == "(the zip)"
    monkeypatch.setattr(bundle, "MAX_UNPACKED_BYTES", 1_000_000)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("warning.json", b"\0" * 1_000_001)
    assert len(out.getvalue()) < 10_000
    failure = bundle.verify_bundle(out.getvalue()).failure
    assert failure.file == "(the zip)" and "more than an evidence bundle holds" in failure.detail
    assert bundle.verify_bundle(bundle.pack({"warning.json": b"{}"})).failure.file in bundle.FILES
    twice = io.BytesIO()
    with pytest.warns(UserWarning, match="Duplicate name"), zipfile.ZipFile(twice, "w") as archive:
        archive.writestr("warning.json", b"{}")
        archive.writestr("warning.json", b"[]")
    assert "more than once" in bundle.verify_bundle(twice.getvalue()).failure.detail


def test_the_report_shows_hostile_ids_as_text():
    from stream.evidence.hashing import ChainRecord, EventSource
    from stream.offline.evidence_report import render_report
    from warning_samples import warning
    hostile = '<script>alert(1)</script>\u202e"'
    w = warning("layering", {"paths": [["U1", hostile, "card:1"]], "hops": 2}, accounts=["U1", hostile],
                txn_ids=["t1"], summary=f"moved through {hostile}")
    raw = orjson.dumps({"type": "transfer", "event_id": "t1", "ts": "2026-03-02T10:00:00Z", "src": "U1",
                        "dst": hostile, "amount": "5.00"})
    record = ChainRecord(0, 1, "w-1", "a" * 64, "b" * 64, "c" * 64, "d" * 64, "0" * 64, "e" * 64)
    checkpoint = {"first_seq": 1, "last_seq": 1, "signed_ms": 0, "merkle_root": "f" * 64, "key_id": "k",
                  "signature": "00"}
    page = render_report(w, [EventSource("t1", "in", 0, 1, raw, 0)], record, checkpoint, "", {"window": "72h"})
    assert "<script" not in page and "&lt;script&gt;" in page and "\u202e" not in page
    assert page.count("<svg") == 1 and "<h2>The transfers, in time order</h2>" in page


def test_an_anchor_from_an_earlier_audit_reveals_a_truncated_chain(filled):
    store, chain, batch, _ = filled
    anchor = orjson.loads(orjson.dumps(audit_store(store).as_dict()))
    assert audit_store(store, anchor=anchor).ok
    head = tables.heads(store, [0])[0]
    store.execute(f"ALTER TABLE fundflow.chain DELETE WHERE outbox_partition = 0 AND seq = {head[0]}")
    store.execute("ALTER TABLE fundflow.chain_checkpoints DELETE WHERE outbox_partition = 0")
    deadline = time.monotonic() + 20
    while tables.heads(store, [0]).get(0) == head and time.monotonic() < deadline:
        time.sleep(0.1)
    assert audit_store(store).ok                     # a shorter chain, and no checkpoint to contradict it ...
    report = audit_store(store, anchor=anchor)       # ... but the anchor remembers the head
    assert f"partition 0: seq {head[0]}, the head when the anchor was taken, is gone (the chain was truncated)" \
        in report.problems, report.render()


class CountingStore(ChdbStore):
    """The embedded store, counting the round trips the chain writer makes; `fail_chain_inserts` refuses the
    next chain-record inserts as an unreachable server would."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.queries: list[str] = []
        self.inserts: list[str] = []
        self.fail_chain_inserts = 0

    def query(self, sql: str) -> list[dict]:
        self.queries.append(sql)
        return super().query(sql)

    def insert_into(self, table: str, columns, rows) -> None:
        if rows:
            if table == tables.CHAIN and self.fail_chain_inserts:
                self.fail_chain_inserts -= 1
                raise StoreError("the warning store is not answering")
            self.inserts.append(table)
        super().insert_into(table, columns, rows)


def _stored(store, batch: list[ChainItem]) -> list[ChainItem]:
    store.insert_rows([warning_to_row(item.warning, 1) for item in batch])
    return batch


def _shifted(batch: list[ChainItem], by: int, partition: int = 0) -> list[ChainItem]:
    """The same warnings as if published again later (new ids, so they chain)."""
    out = []
    for number, item in enumerate(batch):
        warning = EarlyWarning.from_dict({**item.warning.to_dict(), "warning_id": f"{item.warning.warning_id}-{by}"})
        out.append(ChainItem(partition, by + number, warning, item.sources, item.rule_text, item.settings_text))
    return out


def test_after_its_first_batch_the_chain_writer_asks_the_store_only_which_warnings_are_chained(tmp_path):
    store = CountingStore(tmp_path / "chdb")
    try:
        store.ensure_schema()
        chain = EvidenceChain(store, ensure_signing_key(None, tmp_path), every=1_000, interval_ms=60_000)
        chain.ensure_schema()
        sample = items(detect(PACK))[:4]
        chain.append(_stored(store, _shifted(sample, 100)))
        assert len(store.queries) >= 3        # the first batch reads chained ids, the head and the checkpoints
        batch = _stored(store, _shifted(sample, 200))
        store.queries.clear()
        store.inserts.clear()
        chain.append(batch)
        assert len(store.queries) == 1 and "DISTINCT warning_id" in store.queries[0]
        # The rule and settings texts were stored with the first batch: only the events and the records now.
        assert store.inserts == [tables.EVENTS, tables.CHAIN]
        chain.sign_due(force=True)
        unique = len({item.warning.warning_id for item in sample})
        assert [r.seq for r in tables.records(store, 0)] == list(range(1, 2 * unique + 1))
        assert audit_store(store, strict=True).ok
    finally:
        store.close()


def test_a_writer_that_forgets_on_a_rebalance_continues_the_chain_another_worker_extended(tmp_path):
    store = ChdbStore(tmp_path / "chdb")
    try:
        store.ensure_schema()
        key = ensure_signing_key(None, tmp_path)
        first, second = EvidenceChain(store, key), EvidenceChain(store, key)
        first.ensure_schema()
        sample = items(detect(PACK))[:3]
        first.append(_stored(store, _shifted(sample, 100)))
        # The partition moved to another worker, which chained a batch, then came back.
        second.append(_stored(store, _shifted(sample, 200)))
        first.forget()
        made = first.append(_stored(store, _shifted(sample, 300)))
        assert [r.seq for r in made] == [7, 8, 9]
        assert made[0].prev_hash == tables.records(store, 0, 6, 6)[0].record_hash
        first.sign_due(force=True)
        report = audit_store(store, public_key_pem=public_pem(key.public).encode(), strict=True)
        assert report.ok, report.render()
    finally:
        store.close()


def test_a_failed_append_makes_the_writer_read_the_head_from_the_store_again(tmp_path):
    store = CountingStore(tmp_path / "chdb")
    try:
        store.ensure_schema()
        key = ensure_signing_key(None, tmp_path)
        chain = EvidenceChain(store, key)
        chain.ensure_schema()
        sample = items(detect(PACK))[:3]
        chain.append(_stored(store, _shifted(sample, 100)))
        other = EvidenceChain(store, key)            # meanwhile the chain moved on elsewhere
        other.append(_stored(store, _shifted(sample, 200)))
        store.fail_chain_inserts = 1
        batch = _stored(store, _shifted(sample, 300))
        with pytest.raises(StoreError):
            chain.append(batch)
        assert [r.seq for r in chain.append(batch)] == [7, 8, 9]      # not 4, 5, 6 from what it remembered
        chain.sign_due(force=True)
        assert audit_store(store, public_key_pem=public_pem(key.public).encode(), strict=True).ok
    finally:
        store.close()


def test_a_tail_is_signed_once_its_oldest_record_is_old_enough_without_reading_it_back_before(tmp_path):
    store = CountingStore(tmp_path / "chdb")
    now = [1_000_000]
    try:
        store.ensure_schema()
        chain = EvidenceChain(store, ensure_signing_key(None, tmp_path), every=100, interval_ms=10_000,
                              clock=lambda: now[0])
        chain.ensure_schema()
        sample = items(detect(PACK))[:2]
        chain.append(_stored(store, _shifted(sample, 100)))
        now[0] += 6_000
        batch = _stored(store, _shifted(sample, 200))
        store.queries.clear()
        chain.append(batch)
        assert chain.checkpoints_written == 0 and len(store.queries) == 1      # not due: the tail is not read
        now[0] += 5_000                # the oldest record is 11 s old, the newest 5 s
        assert chain.sign_due() == 1
        spans = [(int(c["first_seq"]), int(c["last_seq"])) for c in tables.checkpoints(store)]
        assert spans == [(1, 4)]
        store.queries.clear()
        assert chain.sign_due() == 0 and store.queries == []
    finally:
        store.close()
