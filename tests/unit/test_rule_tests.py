"""Rule tests (`fundflow rules test`): the runner itself, and the shipped pack passing its own tests."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest

from stream.cli import main
from stream.offline.rule_tests import RuleTestError, load_test_file, run_test_file

PACK = Path(__file__).resolve().parents[2] / "rules"

RULES = """\
rules:
  - rule: cashout
    kind: rapid_cashout
    desc: test rule; most of a loan withdrawn soon
    params: {within: 1h, min_ratio: 0.7, max_hops: 2}
    severity: high
"""

TESTS = """\
start: 2026-03-02T10:00:00Z
tests:
  - name: fires
    events:
      - {type: disbursement, event_id: d1, ts: +0m, loan_id: L1, account: U1, amount: "5000.00"}
      - {type: transfer, ts: +10m, src: U1, dst: card:1, amount: "4900.00", channel: withdrawal}
    expect:
      - {rule: cashout, subject: L1, txn_ids: [e2, d1], amount: "4900.00"}
  - name: quiet when slow
    events:
      - {type: disbursement, event_id: d1, ts: 2026-03-02T10:00:00Z, loan_id: L2, account: U2, amount: "5000.00"}
      - {type: transfer, event_id: t1, ts: 2026-03-02T12:00:00Z, src: U2, dst: card:2, amount: "4900.00",
         channel: withdrawal}
    expect: []
"""


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(text))
    return path


def test_shipped_pack_passes_its_tests(capsys):
    assert main(["rules", "test", str(PACK)]) == 0
    out = capsys.readouterr().out
    assert "FAILED" not in out
    files = sorted(p.name for p in PACK.glob("*.test.yaml"))
    assert len(files) >= 4 and all(name in out for name in files)
    assert out.strip().splitlines()[-1].startswith("SUCCESS:")


def test_shipped_pack_tests_cover_every_rule_positively_and_negatively():
    """Each rule has a test expecting it and a test where it must stay silent (expect: [] or expect_none)."""
    from stream.detection.rulebook import load_rules
    rules = load_rules(PACK)
    positive, negative = set(), set()
    for path in PACK.glob("*.test.yaml"):
        _, _, cases = load_test_file(path)
        for case in cases:
            positive |= {e.fields["rule"] for e in case.expect or ()}
            negative |= set(case.expect_none)
            if case.expect == ():
                negative |= {rule.id for rule in rules.rules}
    every = {rule.id for rule in rules.enabled}
    assert every - positive == set()
    assert every - negative == set()


def test_passing_and_failing_tests_are_reported_like_promtool(tmp_path, capsys):
    write(tmp_path, "pack.yaml", RULES)
    write(tmp_path, "pack.test.yaml", TESTS)
    report = run_test_file(tmp_path / "pack.test.yaml")
    assert (report.passed, report.failed) == (2, 0), report.render()

    # Loosen the rule: the quiet case now warns, the runner says what came instead.
    write(tmp_path, "pack.yaml", RULES.replace("within: 1h", "within: 3h"))
    assert main(["rules", "test", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "  OK      fires" in out
    assert "  FAILED  quiet when slow  (line 9)" in out
    assert "unexpected: {rule: cashout, subject: L2" in out
    assert out.strip().splitlines()[-1] == "FAILED: 1 passed, 1 failed in 1 file(s)"


def test_missing_expected_warning_is_reported_with_its_line(tmp_path):
    write(tmp_path, "pack.yaml", RULES)
    write(tmp_path, "pack.test.yaml", TESTS.replace("subject: L1,", "subject: L9,"))
    report = run_test_file(tmp_path / "pack.test.yaml")
    assert report.failed == 1
    text = report.render()
    assert "missing:    {rule: cashout, subject: L9, txn_ids: [e2, d1], amount: 4900.00}  (expected at line 8)" in text
    assert "unexpected: {rule: cashout, subject: L1" in text


def test_expect_none_checks_the_named_rules_and_empty_expect_checks_all(tmp_path):
    other = ("  - rule: other\n    kind: rapid_cashout\n    desc: a second rule that fires on the same loan\n"
             "    severity: low\n")
    (tmp_path / "pack.yaml").write_text(RULES + other)
    write(tmp_path, "pack.test.yaml", TESTS.replace("    expect:\n      - {rule: cashout, subject: L1, txn_ids: [e2, d1], "
                                                     "amount: \"4900.00\"}", "    expect_none: [other]"))
    report = run_test_file(tmp_path / "pack.test.yaml")
    fires, slow = report.results
    # `cashout` warns too but is not named: ignored. `other` is named in expect_none: a failure.
    assert not fires.ok and [w["rule_id"] for w in fires.unexpected] == ["other"]
    assert {w["rule_id"] for w in fires.got} == {"cashout", "other"}
    # `expect: []` covers every rule: `other` (default within 2h) warning on the slow case fails it.
    assert not slow.ok and [w["rule_id"] for w in slow.unexpected] == ["other"]


@pytest.mark.parametrize("old, new, line, fragment, broken", [
    ("    expect: []\n", "", 9, "must say what it expects", "quiet when slow"),
    ("amount: \"5000.00\"}\n      - {type: transfer, ts", "amount: \"-5\"}\n      - {type: transfer, ts", 5,
     "event 1 refused: bad_amount", "fires"),
    ("ts: +10m", "ts: +10 minutes", 6, "relative times look like +5m", "fires"),
    ("{rule: cashout, subject: L1", "{rule: cashot, subject: L1", 8, "unknown rule 'cashot'", "fires"),
    ("  - name: quiet when slow", "  - nme: quiet when slow", 9, "unknown test key 'nme' (did you mean 'name'?)",
     "test at line 9"),
])
def test_a_broken_test_fails_with_file_and_line_and_the_others_still_run(tmp_path, old, new, line, fragment,
                                                                         broken):
    """Regression: one refused event (or any problem of one test) stopped its whole file, and the file's other
    tests were neither run nor counted."""
    write(tmp_path, "pack.yaml", RULES)
    assert old in TESTS
    path = write(tmp_path, "pack.test.yaml", TESTS.replace(old, new))
    report = run_test_file(path)
    assert report.error is None and len(report.results) == 2
    (failed,) = [r for r in report.results if r.name == broken]
    assert not failed.ok and failed.error.startswith(f"{path}:{line}: ") and fragment in failed.error
    (other,) = [r for r in report.results if r.name != broken]
    assert other.error is None and report.failed == 1


def test_every_refused_event_of_a_test_is_reported_at_once(tmp_path):
    write(tmp_path, "pack.yaml", RULES)
    text = TESTS.replace('amount: "5000.00"}\n      - {type: transfer, ts: +10m',
                         'amount: "-5"}\n      - {type: transfer, ts: +10 minutes')
    report = run_test_file(write(tmp_path, "pack.test.yaml", text))
    (failed,) = [r for r in report.results if not r.ok]
    assert "2 events refused" in failed.error and "bad_amount" in failed.error and "+5m" in failed.error
    assert [r.name for r in report.results] == ["fires", "quiet when slow"]


def test_a_broken_test_file_fails_with_file_and_line(tmp_path):
    write(tmp_path, "pack.yaml", RULES)
    path = write(tmp_path, "pack.test.yaml", TESTS.replace("start: 2026-03-02T10:00:00Z", "start: yesterday"))
    with pytest.raises(RuleTestError) as caught:
        load_test_file(path)
    assert str(caught.value).startswith(f"{path}:1: ") and "start: expected RFC 3339" in str(caught.value)
    report = run_test_file(path)
    assert report.failed == 1 and report.error and "start: expected RFC 3339" in report.error


def test_rules_that_do_not_load_fail_the_test_file(tmp_path):
    write(tmp_path, "pack.yaml", RULES.replace("severity: high", "severity: loud"))
    write(tmp_path, "pack.test.yaml", TESTS)
    report = run_test_file(tmp_path / "pack.test.yaml")
    assert report.failed == 1
    assert "the rules under test do not load" in report.error and "severity must be one of" in report.error


def test_rule_files_and_overrides_are_relative_to_the_test_file(tmp_path):
    rules_dir = tmp_path / "rules"
    tests_dir = tmp_path / "tests"
    rules_dir.mkdir()
    tests_dir.mkdir()
    write(rules_dir, "pack.yaml", RULES)
    write(tests_dir, "slow.yaml", "overrides: [{rule: cashout, params: {within: 3h}}]\n")
    text = "rule_files: [../rules/pack.yaml]\noverrides: [slow.yaml]\n" + TESTS
    write(tests_dir, "pack.test.yaml", text)
    report = run_test_file(tests_dir / "pack.test.yaml")
    assert [(r.name, r.ok) for r in report.results] == [("fires", True), ("quiet when slow", False)]


def test_copied_pack_still_passes_from_another_directory(tmp_path):
    """The pack's tests depend only on the pack (relative paths), so a deployment can copy it anywhere."""
    target = tmp_path / "rules"
    shutil.copytree(PACK, target)
    assert main(["rules", "test", str(target)]) == 0


def test_rule_reference_documents_every_kind_and_parameter():
    """rules/README.md is generated from `fundflow rules kinds`; a kind or parameter it lacks means it drifted."""
    from stream.cli.rules import kinds_reference
    from stream.detection.kinds import KINDS
    readme = (PACK / "README.md").read_text()
    for name, kind in KINDS.items():
        section = readme.split(f"### `{name}`", 1)
        assert len(section) == 2, f"kind {name} missing from rules/README.md"
        body = section[1].split("\n### ", 1)[0]
        for param in kind.params:
            assert f"| `{param.name}` |" in body, f"{name}.{param.name} missing from rules/README.md"
    assert "| `within` |" in kinds_reference(KINDS)


def test_rule_reference_kinds_section_is_what_rules_kinds_prints():
    """Word for word: a parameter's meaning, or what a kind's where reads, edited in code must be regenerated here
    (`fundflow rules kinds`)."""
    from stream.cli.rules import kinds_reference
    from stream.detection.kinds import KINDS
    readme = (PACK / "README.md").read_text()
    generated = kinds_reference(KINDS)
    section = readme[readme.index("### `rapid_cashout`"):]
    assert section.strip() == generated.strip()
