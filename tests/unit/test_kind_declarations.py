"""What a kind declares about itself is what it does: the rule loader trusts the declarations to decide what a
rule's `where` may read, so a kind that reported loans without saying so would have filters on `disbursement`
refused, and one that said so without doing it would let filters through that never match."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace
from pathlib import Path

from stream.detection.kinds import KINDS
from stream.offline.rule_tests import find_test_files, run_test_file

PACK = Path(__file__).resolve().parents[2] / "rules"


def test_kinds_report_a_loan_exactly_when_they_declare_it(monkeypatch):
    seen: dict[str, set[bool]] = defaultdict(set)

    def recording(name, detect):
        def detect_and_record(rule, event, state):
            findings = list(detect(rule, event, state))
            for finding in findings:
                seen[name].add(finding.loan is not None)
            return findings
        return detect_and_record

    for name, kind in list(KINDS.items()):
        monkeypatch.setitem(KINDS, name, replace(kind, detect=recording(name, kind.detect)))
    reports = [run_test_file(path) for path in find_test_files([PACK])]
    assert all(report.failed == 0 for report in reports), "\n".join(r.render() for r in reports)

    assert set(seen) == set(KINDS), f"the pack's rule tests never made these kinds find anything: " \
                                    f"{sorted(set(KINDS) - set(seen))}"
    for name, loans in seen.items():
        if KINDS[name].reports_loan:
            assert True in loans, f"{name} declares REPORTS_LOAN but none of its findings carried a loan"
        else:
            assert loans == {False}, f"{name} reports loans (Finding.loan) but does not declare REPORTS_LOAN"
