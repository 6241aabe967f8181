"""Scoring warnings against truth: exact recall / precision on hand-built cases, and the AMLSim truth file."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from stream.cli import main
from stream.offline.evaluate import EvaluationError, WarningRef, evaluate, overlaps, read_warnings, warning_from_dict
from stream.simulate.truth import Instance, Truth, TruthError, load_truth, truth_from_dict
from stream.model.warning import EarlyWarning, make_warning_id

AMLSIM_TRUTH = Path("/work/shared/data/amlsim-12k/truth.json")

TRUTH = Truth(source="hand-built", events=100, planted=(
    Instance("rapid_cashout", "A1", ("A1", "A2"), ("d-1", "t-2", "t-3"), ("L-1",), 0),
    Instance("rapid_cashout", "B1", ("B1",), ("d-4", "t-5"), ("L-2",), 1),
    Instance("cycle", "C1", ("C1", "C2", "C3"), ("d-6", "t-7", "t-8", "t-9"), ("L-3",), 2),
    Instance("cycle", "D1", ("D1", "D2", "D3"), ("d-10", "t-11", "t-12", "t-13"), ("L-4",), 3),
), lookalikes=(
    Instance("dinner_split", "E1", ("E1", "E2", "E3", "E4"), ("t-20", "t-21", "t-22"), (), 4),
    Instance("payroll_fan_out", "F1", ("F1", "F2", "F3"), ("t-30", "t-31"), (), 5),
))


def w(warning_id, rule_id, kind, accounts=(), loan_ids=(), txn_ids=()):
    return WarningRef(warning_id, rule_id, kind, tuple(accounts), tuple(loan_ids), tuple(txn_ids))


WARNINGS = [
    w("w1", "rapid-cashout", "rapid_cashout", ["A1", "X9"], [], ["t-3"]),     # A by txn id, same kind
    w("w1", "rapid-cashout", "rapid_cashout", ["A1", "X9"], [], ["t-3"]),     # duplicate id: ignored
    w("w2", "fan-out", "fan_out", ["B9"], ["L-2"], ["t-99"]),                  # B by loan id, other kind
    w("w3", "cycle", "cycle", ["C3", "C1"], [], ["t-77"]),                    # C by two accounts
    w("w4", "cycle", "cycle", ["D2", "Z1"], [], ["t-78"]),                    # one account of D only: no
    w("w5", "fan-in", "fan_in", ["E1", "E2", "E3"], [], ["t-50"]),            # look-alike dinner split
    w("w6", "fan-in", "fan_in", ["Q1", "Q2"], [], ["t-60"]),                  # background
]


def test_exact_recall_precision_and_noise_on_a_hand_built_case():
    result = evaluate(WARNINGS, TRUTH)
    assert (result.warnings, result.duplicates) == (6, 1)
    assert (result.overall.instances, result.overall.detected, result.overall.detected_same_kind) == (4, 3, 2)
    assert result.overall.recall == 0.75 and result.overall.recall_same_kind == 0.5
    assert (result.by_kind["rapid_cashout"].detected, result.by_kind["rapid_cashout"].detected_same_kind) == (2, 1)
    assert (result.by_kind["cycle"].detected, result.by_kind["cycle"].recall) == (1, 0.5)
    assert (result.planted_warnings, result.lookalike_warnings, result.background_warnings) == (3, 1, 2)
    assert result.precision == 0.5
    assert result.lookalikes["dinner_split"].to_dict() == {"instances": 1, "touched": 1, "warnings": 1}
    assert result.lookalikes["payroll_fan_out"].to_dict() == {"instances": 1, "touched": 0, "warnings": 0}
    assert {k: (r.warnings, r.planted, r.lookalike, r.background) for k, r in result.rules.items()} == {
        "cycle": (2, 1, 0, 1), "fan-in": (2, 0, 1, 1), "fan-out": (1, 1, 0, 0), "rapid-cashout": (1, 1, 0, 0)}
    assert [i.key for i in result.missed] == ["D1"]
    data = result.to_dict()
    assert data["warnings"]["precision"] == 0.5 and data["recall"]["by_kind"]["cycle"]["recall"] == 0.5
    assert orjson.loads(orjson.dumps(data)) == data


def test_overlap_definition_pairwise_agrees_with_the_index():
    for warning in WARNINGS:
        for number, instance in enumerate(TRUTH.planted):
            expected = evaluate([warning], Truth("", 0, (instance,), ())).overall.detected == 1
            assert overlaps(warning, instance) == expected, (warning.warning_id, number)
    assert overlaps(w("x", "r", "k", ["C1", "C2"]), TRUTH.planted[2])
    assert not overlaps(w("x", "r", "k", ["C1"]), TRUTH.planted[2])


def test_no_warnings_gives_zero_recall_and_undefined_precision():
    result = evaluate([], TRUTH)
    assert result.overall.recall == 0.0 and result.precision is None and result.warnings == 0


@pytest.mark.skipif(not AMLSIM_TRUTH.exists(), reason="AMLSim benchmark truth not present on this machine")
def test_amlsim_truth_with_an_empty_warnings_file(tmp_path, capsys):
    truth = load_truth(AMLSIM_TRUTH)
    assert len(truth.planted) == 160 and all(not i.loan_ids for i in truth.planted)
    result = evaluate([], truth)
    assert result.overall.instances == 160 and result.overall.detected == 0 and result.overall.recall == 0.0
    empty = tmp_path / "warnings.jsonl"
    empty.write_bytes(b"")
    assert main(["evaluate", str(empty), str(AMLSIM_TRUTH), "--json"]) == 0
    report = orjson.loads(capsys.readouterr().out)
    assert report["recall"]["overall"] == {"instances": 160, "detected": 0, "recall": 0.0,
                                           "detected_same_kind": 0, "recall_same_kind": 0.0,
                                           "median_delay_s": None, "max_delay_s": None}
    assert report["lookalikes"]["fan_in"]["instances"] == 10


@pytest.mark.skipif(not AMLSIM_TRUTH.exists(), reason="AMLSim benchmark truth not present on this machine")
def test_amlsim_instance_found_by_accounts_only():
    truth = load_truth(AMLSIM_TRUTH)
    target = truth.planted[0]
    hit = w("w", "fan-in", "fan_in", target.accounts[:2], [], ["not-a-txn"])
    result = evaluate([hit], truth)
    assert result.overall.detected == 1 and result.by_kind[target.kind].detected_same_kind == 1


def test_reads_warnings_as_replay_writes_them(tmp_path):
    warning = EarlyWarning(
        warning_id=make_warning_id("rapid-cashout", "1", "L-1"), rule_id="rapid-cashout", rule_version="1",
        kind="rapid_cashout", severity="high", score=0.9, subject="L-1", accounts=("A1", "card:1"),
        loan_ids=("L-1",), txn_ids=("d-1", "t-3"), amount=490000, currency="CNY", first_ts=1_772_000_000_000,
        event_ts=1_772_000_100_000, detected_at=1_772_000_100_000, summary="s")
    path = tmp_path / "w.jsonl"
    path.write_bytes(warning.to_json() + b"\n\n" + warning.to_json() + b"\n")
    refs = read_warnings(path)
    assert refs[0] == WarningRef(warning.warning_id, "rapid-cashout", "rapid_cashout", ("A1", "card:1"),
                                 ("L-1",), ("d-1", "t-3"), 1_772_000_100_000)
    assert evaluate(refs, TRUTH).by_kind["rapid_cashout"].detected_same_kind == 1


def test_bad_warnings_and_truth_files_say_where(tmp_path):
    path = tmp_path / "w.jsonl"
    path.write_bytes(b'{"warning_id":"w1","rule_id":"r","kind":"k"}\n{not json\n')
    with pytest.raises(EvaluationError, match=r"w\.jsonl:2: not valid JSON"):
        read_warnings(path)
    with pytest.raises(EvaluationError, match="field 'txn_ids' must be a list of strings"):
        warning_from_dict({"warning_id": "w", "rule_id": "r", "kind": "k", "txn_ids": "t-1"}, where="x:1")
    with pytest.raises(EvaluationError, match="field 'rule_id'"):
        warning_from_dict({"warning_id": "w", "kind": "k"})
    with pytest.raises(EvaluationError, match="cannot read warnings file"):
        read_warnings(tmp_path / "missing.jsonl")
    with pytest.raises(TruthError, match=r"planted\[1\]: field 'kind'"):
        truth_from_dict({"planted": [{"kind": "cycle"}, {"accounts": []}]})
    bad = tmp_path / "t.json"
    bad.write_text("[1, 2]")
    with pytest.raises(TruthError, match="expected a JSON object"):
        load_truth(bad)


def test_cli_table_and_error_exit(tmp_path, capsys):
    truth_path = tmp_path / "t.json"
    truth_path.write_bytes(TRUTH.to_json())
    warnings_path = tmp_path / "w.jsonl"
    warnings_path.write_bytes(b"\n".join(orjson.dumps({"warning_id": x.warning_id, "rule_id": x.rule_id,
                                                        "kind": x.kind, "accounts": list(x.accounts),
                                                        "loan_ids": list(x.loan_ids), "txn_ids": list(x.txn_ids)})
                                         for x in WARNINGS))
    assert main(["evaluate", str(warnings_path), str(truth_path)]) == 0
    table = capsys.readouterr().out
    assert "ALL" in table and "75.0%" in table and "precision 50.0%" in table
    assert main(["evaluate", str(warnings_path), str(tmp_path / "nope.json")]) == 1
    assert "cannot read truth file" in capsys.readouterr().err


def test_shipped_rule_pack_on_a_simulated_ledger():
    """The whole back-test loop an analyst runs: simulate, replay with the shipped rules, evaluate."""
    from stream.detection.detector import Detector
    from stream.offline.replay import replay_lines
    from stream.detection.rulebook import load_rules
    from stream.simulate import SimParams, simulate

    events, truth = simulate(SimParams(seed=21, accounts=600, days=2, instances=2, background_per_day=1500))
    detector = Detector(load_rules(Path(__file__).parents[2] / "rules"))
    emitted: list[dict] = []
    report = replay_lines((orjson.dumps(e) for e in events), detector, lambda x: emitted.append(x.to_dict()))
    assert report.bad == 0 and report.events == truth.events
    result = evaluate([warning_from_dict(x) for x in emitted], truth)
    assert result.overall.recall >= 0.75, result.to_dict()["recall"]
    assert result.by_kind["rapid_cashout"].recall_same_kind == 1.0
    # the pack's documented intent: a loan spent on a phone and a payroll run are not laundering
    assert result.lookalikes["loan_spent_at_once"].touched == 0
    assert result.lookalikes["payroll_fan_out"].touched == 0


def test_detection_delay_from_instance_start_to_earliest_overlapping_warning():
    start = 1_772_000_000_000
    truth = Truth("timed", 10, planted=(
        Instance("layering", "A", ("A", "B"), ("d-1", "t-2"), ("L-1",), 0, first_ts=start, last_ts=start + 600_000),
        Instance("layering", "C", ("C", "D"), ("d-3", "t-4"), ("L-2",), 1, first_ts=start, last_ts=start + 600_000),
        Instance("layering", "E", ("E", "F"), ("d-5", "t-6"), ("L-3",), 2),      # start unknown: no delay
    ), lookalikes=())
    warnings = [WarningRef("w1", "r", "layering", loan_ids=("L-1",), event_ts=start + 300_000),
                WarningRef("w2", "r", "layering", loan_ids=("L-1",), event_ts=start + 120_000),
                WarningRef("w3", "r", "layering", loan_ids=("L-2",), event_ts=start + 600_000),
                WarningRef("w4", "r", "layering", loan_ids=("L-3",), event_ts=start)]
    result = evaluate(warnings, truth)
    assert result.by_kind["layering"].delays_s == (120.0, 600.0)
    assert result.by_kind["layering"].median_delay_s == 360.0 and result.overall.max_delay_s == 600.0
    parsed = truth_from_dict(orjson.loads(truth.to_json()))
    assert parsed.planted[0].first_ts == start and parsed.planted[2].first_ts is None
    assert warning_from_dict({"warning_id": "w", "rule_id": "r", "kind": "k",
                              "event_ts": "2026-02-25T06:13:20.000Z"}).event_ts == start
    with pytest.raises(EvaluationError, match="field 'event_ts'"):
        warning_from_dict({"warning_id": "w", "rule_id": "r", "kind": "k", "event_ts": "soon"})
    with pytest.raises(TruthError, match=r"planted\[0\]: field 'first_ts'"):
        truth_from_dict({"planted": [{"kind": "cycle", "first_ts": "yesterday"}]})


def test_recall_by_variant_when_the_truth_marks_variants():
    truth = Truth("variants", 10, planted=(
        Instance("cycle", "A", ("A", "B"), ("t-1",), (), 0, variant="evasive"),
        Instance("cycle", "C", ("C", "D"), ("t-2",), (), 1, variant="evasive"),
        Instance("cycle", "E", ("E", "F"), ("t-3",), (), 2),
    ), lookalikes=())
    result = evaluate([WarningRef("w1", "r", "cycle", txn_ids=("t-1", "t-3"))], truth)
    assert result.by_variant["evasive"].recall == 0.5 and result.by_variant["plain"].recall == 1.0
    assert evaluate([], TRUTH).by_variant == {}
    assert truth_from_dict(orjson.loads(truth.to_json())).planted[0].variant == "evasive"
