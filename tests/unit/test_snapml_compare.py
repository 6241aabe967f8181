"""The scoring of bench/snapml_compare.py: alerts caught by flagged transactions, edge precision/recall/F1, the
thresholds chosen on training scores, and flagged transfers as one-transfer warnings under evaluate's overlap rule.
None of it needs Snap ML or LightGBM."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))    # bench/ is a top-level folder, not installed

from bench.snapml_compare import (Ledger, alerts_caught_by_txn, best_f1_threshold, budget_threshold, edge_scores,
                                  edge_warnings, missing_extra)
from stream.offline.evaluate import evaluate
from stream.simulate.truth import Instance, Truth


def alert(kind: str, accounts: tuple[str, ...], txns: tuple[str, ...]) -> Instance:
    return Instance(kind=kind, key=accounts[0], accounts=accounts, txn_ids=txns)


ALERTS = (alert("cycle", ("A", "B", "C"), ("t1", "t2", "t3")), alert("fan_out", ("D", "E", "F"), ("t4", "t5")))


def test_an_alert_is_caught_by_any_one_of_its_transactions():
    assert alerts_caught_by_txn([], ALERTS) == 0
    assert alerts_caught_by_txn(["t2", "t9"], ALERTS) == 1
    assert alerts_caught_by_txn(["t3", "t5", "t5"], ALERTS) == 2


def test_edge_scores():
    precision, recall, f1 = edge_scores(["t1", "t2", "x"], ["t1", "t2", "t3", "t4"])
    assert precision == pytest.approx(2 / 3) and recall == pytest.approx(0.5)
    assert f1 == pytest.approx(2 * precision * recall / (precision + recall))
    assert edge_scores([], ["t1"]) == (None, 0.0, 0.0)


def test_best_f1_threshold_flags_equal_scores_together():
    scores = [0.9, 0.8, 0.8, 0.3, 0.1]
    labels = [True, True, False, True, False]
    # >= 0.9: F1 2/4; >= 0.8: 2*2/(3+3) = 0.667; >= 0.3: 2*3/(4+3) = 0.857; >= 0.1: 6/8
    assert best_f1_threshold(scores, labels) == 0.3
    assert best_f1_threshold([0.5, 0.5, 0.2], [True, False, False]) == 0.5
    with pytest.raises(ValueError):
        best_f1_threshold([0.4], [False])


def test_budget_threshold_flags_the_highest_scores():
    scores = [0.1, 0.7, 0.4, 0.9]
    assert budget_threshold(scores, 2) == 0.7
    assert budget_threshold(scores, 0) == 0.9          # at least one flag
    assert budget_threshold(scores, 10) == 0.1


def test_flagged_transfers_as_warnings_follow_the_overlap_rule():
    ledger = Ledger(txn_ids=["t1", "x1", "x2"], src=["A", "B", "D"], dst=["B", "C", "Z"], ts_ms=[1, 2, 3],
                    amount=[1.0, 1.0, 1.0])
    warnings = edge_warnings(range(3), ledger, "model")
    assert [w.txn_ids for w in warnings] == [("t1",), ("x1",), ("x2",)]
    result = evaluate(warnings, Truth(source="t", events=3, planted=ALERTS, lookalikes=()))
    # t1 is the cycle's own transfer, x1 joins two of its accounts; x2 touches one account of the fan-out only
    assert result.overall.detected == 1 and result.planted_warnings == 2 and result.warnings == 3
    assert alerts_caught_by_txn((w.txn_ids[0] for w in warnings), ALERTS) == 1


def test_a_missing_extra_is_named(monkeypatch):
    monkeypatch.setitem(sys.modules, "snapml", None)            # import snapml now raises ImportError
    assert "snapml" in missing_extra()
