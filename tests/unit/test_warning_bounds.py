"""A warning's size is bounded by construction: capped lists with a count of what was cut."""

from __future__ import annotations

from detection_helpers import detector, disb, rule, run, xfer

from stream.model.warning import MAX_EVIDENCE_TEXT, MAX_LIST_ITEMS, capped_evidence


def test_a_fan_in_of_600_loans_gives_a_warning_of_bounded_size_that_says_what_was_cut():
    events = []
    long_id = "B" * 240
    for i in range(600):
        events.append(disb(f"d{i}", f"{long_id}{i:05d}", 2000, i * 0.01, loan=f"L{'x' * 240}{i:05d}"))
        events.append(xfer(f"t{'y' * 240}{i:05d}", f"{long_id}{i:05d}", "C", 1900, i * 0.01 + 0.005))
    det = detector(rule("fan_in", params={"min_sources": 600}), limits=None)
    (warning,) = run(det, events)
    assert len(warning.accounts) == MAX_LIST_ITEMS and len(warning.loan_ids) == MAX_LIST_ITEMS
    assert len(warning.txn_ids) == MAX_LIST_ITEMS
    cut = warning.evidence["truncated"]
    assert cut["accounts"] == 601 - MAX_LIST_ITEMS and cut["txn_ids"] == 600 - MAX_LIST_ITEMS
    assert len(warning.to_json()) < 400_000


def test_evidence_lists_and_texts_are_capped_at_every_level():
    cut: dict[str, int] = {}
    evidence = capped_evidence({"path": [{"note": "n" * 5000}] * 500, "hops": 3}, cut)
    assert len(evidence["path"]) == MAX_LIST_ITEMS and len(evidence["path"][0]["note"]) == MAX_EVIDENCE_TEXT
    assert cut["evidence.path"] == 500 - MAX_LIST_ITEMS and evidence["hops"] == 3
