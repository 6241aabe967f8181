"""`fundflow replay-diff A B`: the per-rule report, its exit codes, and one line naming the file and line for input
that is not a warnings file."""

from __future__ import annotations

import gzip

import orjson
import pytest

from stream.cli import main
from warning_samples import LEDGER, replayed


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
