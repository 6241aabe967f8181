"""The evidence chain's pure parts: hashes, RFC 6962 Merkle roots, keys, rule texts, the worker's evidence index
and the evidence header."""

from __future__ import annotations

import hashlib
import os
import pickle
import stat

import orjson
import pytest

from stream.evidence import hashing
from stream.evidence.hashing import EventSource
from stream.evidence.keys import ensure_signing_key, key_id, load_public_pem, public_pem, verify_signature
from stream.evidence.ruletext import load_rebuilt, parse_rule_text, rule_yaml
from stream.model.events import parse_event
from stream.model.warning import EarlyWarning
from stream.sinks.evidence_tables import canonical_row_json
from stream.detection.rulebook import load_rules
from stream.sinks.schema import warning_to_row
from stream.worker.deadletter import Origin
from stream.worker.evidence_index import EvidenceIndex
from stream.worker.publisher import decode_evidence, encode_evidence
from warning_samples import PACK, replayed, warning


def _reference_root(leaves: list[bytes]) -> bytes:
    """RFC 6962 §2.1 as written: recursive, split at the largest power of two smaller than n."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return hashlib.sha256(b"\x01" + _reference_root(leaves[:k]) + _reference_root(leaves[k:])).digest()


def test_merkle_root_is_rfc_6962_for_every_size_up_to_70():
    leaves = [bytes([n]) * 32 for n in range(70)]
    for size in range(71):
        assert hashing.merkle_root(leaves[:size]) == _reference_root(leaves[:size]), size
    assert hashing.merkle_root([]).hex() == hashlib.sha256(b"").hexdigest()


def test_a_record_hash_changes_with_every_field_and_links_to_the_one_before():
    first = hashing.next_record(0, 1, "w-a", "a" * 64, "b" * 64, "c" * 64, "s" * 64, hashing.GENESIS)
    second = hashing.next_record(0, 2, "w-b", "d" * 64, "e" * 64, "f" * 64, "s" * 64, first.record_hash)
    assert second.prev_hash == first.record_hash and first.expected_hash() == first.record_hash
    assert hashing.ChainRecord.from_dict(second.to_dict()) == second
    base = (0, 1, "w-a", "a" * 64, "b" * 64, "c" * 64, "s" * 64, hashing.GENESIS)
    seen = {hashing.record_hash(*base)}
    for index in range(len(base)):
        changed = list(base)
        changed[index] = changed[index] + 1 if isinstance(changed[index], int) else changed[index][:-1] + "9"
        seen.add(hashing.record_hash(*changed))
    assert len(seen) == len(base) + 1


def test_the_events_hash_ignores_order_and_sees_every_byte():
    a = EventSource("t1", "in", 0, 5, b'{"x":1}', 10)
    b = EventSource("d1", "in", 1, 7, b'{"y":2}', 5)
    assert hashing.sources_sha256([a, b]) == hashing.sources_sha256([b, a])
    assert hashing.sources_sha256([a, b]) != hashing.sources_sha256([a, EventSource("d1", "in", 1, 7, b'{"y":3}')])
    assert hashing.sources_sha256([a, b]) != hashing.sources_sha256([a, EventSource("d1", "in", 1, 8, b'{"y":2}')])
    assert EventSource.from_dict(orjson.loads(orjson.dumps(a.to_dict()))) == a


def test_a_stored_row_gives_back_the_exact_canonical_json_of_its_warning(tmp_path):
    samples = list(replayed(tmp_path).values()) + [
        warning("cycle", {"paths": [["A", "B", "A"]], "amounts": ["1.00", "2.50"], "ratio": 0.3333333333333333,
                          "nested": {"z": 1, "a": [1.5, None, True]}}, score=0.123456789)]
    for sample in samples:
        assert canonical_row_json(warning_to_row(sample, 12345)) == sample.to_json()
        again = EarlyWarning.from_json(sample.to_json())
        assert again.to_json() == sample.to_json()


def test_the_signing_key_is_generated_once_private_and_verifies(tmp_path):
    key = ensure_signing_key(None, tmp_path)
    assert stat.S_IMODE(os.stat(key.path).st_mode) == 0o600
    again = ensure_signing_key(None, tmp_path)
    assert again.key_id == key.key_id == key_id(load_public_pem(public_pem(key.public)))
    assert len(key.key_id) == 16
    signature = key.sign(b"message")
    assert verify_signature(key.public, signature, b"message")
    assert not verify_signature(key.public, signature, b"messagf")
    assert not verify_signature(key.public, "00" * 64, b"message")
    other = ensure_signing_key(None, tmp_path / "elsewhere")
    assert not verify_signature(other.public, signature, b"message")


def test_every_rule_of_the_default_pack_round_trips_through_its_canonical_text(tmp_path):
    for rule in load_rules(PACK).rules:
        text = parse_rule_text(rule.canonical_text)
        assert text.rule_id == rule.id and text.version == rule.version
        assert hashing.rule_sha256(rule.canonical_text) == hashing.sha256_hex(rule.canonical_text.encode())
        rebuilt = load_rebuilt(text, tmp_path / rule.id).rules[0]
        assert (rebuilt.id, rebuilt.version, rebuilt.canonical_text) == (rule.id, rule.version, rule.canonical_text)
        assert rebuilt.where_text == rule.where_text and rebuilt.notify == rule.notify


def test_a_changed_where_source_rebuilds_as_another_version(tmp_path):
    rule = next(r for r in load_rules(PACK).rules if r.where_text)
    data = orjson.loads(rule.canonical_text)
    data["where_source"] = data["where_source"].replace("!=", "==")
    forged = parse_rule_text(orjson.dumps(data, option=orjson.OPT_SORT_KEYS).decode())
    assert forged.version == rule.version             # the content claims the old version ...
    assert load_rebuilt(forged, tmp_path).rules[0].version != rule.version   # ... the loader sees through it
    assert "rebuilt from" in rule_yaml(forged)


def test_the_index_keeps_the_window_of_events_and_finds_a_warnings_sources():
    index = EvidenceIndex(window_ms=1000, lateness_ms=100)
    raw = [b'{"type":"disbursement","event_id":"d1","ts":1772446500000,"loan_id":"L1","account":"U1","amount":"10"}',
           b'{"type":"transfer","event_id":"t1","ts":1772446500500,"src":"U1","dst":"U2","amount":"9"}',
           b'{"type":"transfer","event_id":"t2","ts":1772446502000,"src":"U2","dst":"U3","amount":"8"}']
    for offset, value in enumerate(raw):
        index.record(parse_event(value), value, Origin("in", 2, offset))
    cited = warning("layering", {}, txn_ids=["t1", "t2", "nope"], loan_ids=["L1"])
    found = index.sources_for(cited)
    assert [s.event_id for s in found] == ["t1", "t2", "d1"]
    assert found[2].value == raw[0] and (found[2].topic, found[2].partition, found[2].offset) == ("in", 2, 0)
    restored = EvidenceIndex.restore(pickle.loads(pickle.dumps(index.export())))
    assert restored.sources_for(cited) == found
    index.expire(1_772_446_501_200)           # horizon ..._500_100: d1 is out of the window, t1 still in
    assert [s.event_id for s in index.sources_for(cited)] == ["t1", "t2"]
    index.record(parse_event(raw[1]), b"other bytes", Origin("in", 2, 9))    # a duplicate keeps the first bytes
    assert index.by_event["t1"].value == raw[1]


def test_the_evidence_header_round_trips_and_stays_within_its_budget():
    sources = tuple(EventSource(f"t{n}", "in", 0, n, b"x" * 1000, n) for n in range(10))
    events, omitted = decode_evidence(encode_evidence(sources))
    assert events == sources and omitted == 0
    events, omitted = decode_evidence(encode_evidence(sources, budget=5000))
    assert 0 < len(events) < 10 and omitted == 10 - len(events)
    with pytest.raises(ValueError):
        decode_evidence(b'{"events": [{"event_id": 1}]}')
