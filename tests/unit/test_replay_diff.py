"""`fundflow replay-diff A B` and `fundflow rules diff OLD NEW --replay LEDGER`: the per-rule report, its exit
codes, and one line naming the file and line for input that is not a warnings file."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import orjson
import pytest

from stream.cli import main
from warning_samples import LEDGER, PACK, replayed


@pytest.fixture
def runs(tmp_path):
    """Two warnings files: B drops the round trip and changes the cash-out's amount."""
    warnings = replayed(tmp_path)
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_bytes(b"".join(w.to_json() + b"\n" for w in warnings.values()))
    changed = {**warnings["rapid-cashout"].to_dict(), "amount": "4000.00"}
    b.write_bytes(warnings["layering-chain"].to_json() + b"\n\n" + orjson.dumps(changed) + b"\n")
    return a, b, warnings


def test_replay_diff_reports_by_rule_and_exits_1_only_when_asked(runs, capsys):
    a, b, warnings = runs
    assert main(["replay-diff", str(a), str(b)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "rapid-cashout: 1 changed, 0 the same"
    assert out[1] == f"  ~ {warnings['rapid-cashout'].warning_id}  L1  amount 4850.00 -> 4000.00"
    assert out[2] == "round-trip-pair: 1 dropped, 0 the same"
    assert out[-1] == f"total: {b} adds 0, drops 1, changes 1 of the 3 warnings of {a} (1 the same; 2 in {b})"
    assert main(["replay-diff", str(a), str(b), "--exit-code"]) == 1
    capsys.readouterr()
    assert main(["replay-diff", str(a), str(a), "--exit-code"]) == 0
    assert capsys.readouterr().out == f"no differences: the same 3 warnings in {a} and {a}\n"


def test_replay_diff_json_and_gzipped_input(runs, capsys, tmp_path):
    a, b, _ = runs
    zipped = tmp_path / "b.jsonl.gz"
    zipped.write_bytes(gzip.compress(b.read_bytes()))
    assert main(["replay-diff", str(a), str(zipped), "--json"]) == 0
    report = orjson.loads(capsys.readouterr().out)
    assert report["total"] == {"added": 0, "dropped": 1, "changed": 1, "same": 1} and report["differ"] is True
    assert report["rules"]["round-trip-pair"]["dropped"][0]["rule_id"] == "round-trip-pair"


@pytest.mark.parametrize("content, expected", [
    (None, "{path}: no such file; expected a warnings file (`fundflow replay LEDGER --out FILE` writes one)"),
    ("dir", "{path}: is a directory; expected a warnings file"),
    (b"\n{\"warning_id\": \n", "{path}:2: not JSON ("),
    (b"[1, 2]\n", "{path}:1: not a warning: expected a JSON object, got list"),
    (b'{"warning_id": "w-1", "amount": "1.00"}\n', "{path}:1: not a warning: missing field 'rule_id'"),
    (LEDGER[0].encode() + b"\n", "{path}:1: a ledger event (disbursement), not a warning: this looks like a ledger"),
    (gzip.compress(b"x" * 1000)[:12], "{path}: a damaged gzip file ("),
])
def test_a_bad_warnings_file_is_one_line_naming_the_file_and_line(runs, capsys, tmp_path, content, expected):
    a, _, _ = runs
    bad = tmp_path / "bad.jsonl"
    if content == "dir":
        bad.mkdir()
    elif content is not None:
        bad.write_bytes(content)
    assert main(["replay-diff", str(a), str(bad)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("fundflow replay-diff: " + expected.format(path=bad)), err
    assert err.count("\n") == 1 and "Traceback" not in err


def tightened_pack(tmp_path: Path, **edits: str) -> Path:
    """A copy of the shipped pack with min_ratio changed in rapid-cashout (`cashout`) or round-trip-pair (`pair`)."""
    pack = tmp_path / "tightened"
    shutil.copytree(PACK, pack, ignore=shutil.ignore_patterns("*.test.yaml", "README.md"))
    for name, (file, old) in {"cashout": ("cashout.yaml", "0.8"), "pair": ("layering.yaml", "0.9")}.items():
        if name in edits:
            path = pack / file
            text = path.read_text()
            assert f"      min_ratio: {old}\n" in text
            path.write_text(text.replace(f"      min_ratio: {old}\n", f"      min_ratio: {edits[name]}\n", 1))
    return pack


def test_rules_diff_replays_the_ledger_under_both_packs(tmp_path, capsys):
    ledger = tmp_path / "ledger.jsonl"
    ledger.write_text("\n".join(LEDGER) + "\n")
    pack = tightened_pack(tmp_path, cashout="0.99")   # the sample cash-out moved 97% of its loan: no longer enough
    assert main(["rules", "diff", str(PACK), str(pack), "--replay", str(ledger), "--exit-code"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[:3] == ["~ rapid-cashout (rapid_cashout):", "    params.min_ratio: 0.8 -> 0.99 (tightened)",
                       "0 added, 0 removed, 1 changed, 15 unchanged"]
    assert out[4] == f"== warnings of {ledger}, replayed under {PACK} and under {pack}"
    assert out[5:7] == [f"under {PACK}: 7 events, 0 bad lines skipped, 3 warnings",
                        f"under {pack}: 7 events, 0 bad lines skipped, 3 warnings"]
    # No longer rapid enough, the loan is cashout-late's, which rapid-cashout no longer suppresses.
    assert out[7] == "cashout-late: 1 added, 0 the same"
    assert out[9] == "rapid-cashout: 1 dropped, 0 the same"
    assert out[-1] == f"total: {pack} adds 1, drops 1, changes 0 of the 3 warnings of {PACK} (2 the same; 3 in {pack})"


def test_a_rule_edit_that_raises_the_same_warnings_reads_as_no_difference(tmp_path, capsys):
    ledger = tmp_path / "ledger.jsonl"
    ledger.write_text("\n".join(LEDGER) + "\n")
    # New versions of a loan rule and of a rule with a cooldown, raising the same warnings under new ids: the
    # cycle's is matched through the pack's cooldown, which a plain replay-diff of the two files cannot know.
    # Scores are measured against the rule's thresholds, so a tightened threshold lowers them and nothing else.
    pack = tightened_pack(tmp_path, cashout="0.9", pair="0.95")
    assert main(["rules", "diff", str(PACK), str(pack), "--replay", str(ledger)]) == 0
    out = capsys.readouterr().out.splitlines()
    changed = [line for line in out if line.startswith("  ~ ")]
    assert len(changed) == 2 and all(line.split("  ")[-1].startswith("score ") and "," not in line.split("  ")[-1]
                                     for line in changed), changed
    assert out[-1] == f"total: {pack} adds 0, drops 0, changes 2 of the 3 warnings of {PACK} (1 the same; 3 in {pack})"


def test_rules_diff_with_a_missing_ledger_is_one_line(tmp_path, capsys):
    assert main(["rules", "diff", str(PACK), str(PACK), "--replay", str(tmp_path / "none.jsonl")]) == 1
    assert capsys.readouterr().err == f"fundflow rules: {tmp_path / 'none.jsonl'}: no such file\n"
