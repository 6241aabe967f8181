"""`suppressed_by`: a looser rule stays quiet about an incident its stricter sibling already warned about, and the
loader says when the link cannot work."""

from __future__ import annotations

import textwrap

from detection_helpers import detector, disb, rule, run, xfer
from stream.detection.rulebook import check_rules
from stream.rules.model import Cooldown
from dataclasses import replace

DAY = 24 * 3_600_000


def cashout_rules(suppressed: bool):
    strict = rule("rapid_cashout", "rapid", params={"within": "1h", "min_ratio": 0.8},
                  cooldown=Cooldown("loan", DAY))
    loose = rule("rapid_cashout", "split", params={"within": "12h", "min_ratio": 0.5},
                 cooldown=Cooldown("loan", DAY))
    if suppressed:
        loose = replace(loose, suppressed_by=("rapid",))
    return strict, loose


def test_the_looser_rule_is_quiet_once_the_stricter_one_warned():
    events = [disb("d1", "U1", 5000, 0, loan="L1"), xfer("t1", "U1", "card:1", 4900, 10, channel="withdrawal")]
    assert sorted(w.rule_id for w in run(detector(*cashout_rules(False)), events)) == ["rapid", "split"]
    det = detector(*cashout_rules(True))
    assert [w.rule_id for w in run(det, events)] == ["rapid"]
    assert det.stats()["suppressed"] == {"split": 1}


def test_the_looser_rule_still_warns_when_it_completes_first_or_alone():
    # Half of the loan out at 10 minutes (split), the rest at 20 (rapid): both warn, the looser one first.
    events = [disb("d1", "U1", 5000, 0, loan="L1"), xfer("t1", "U1", "card:1", 2600, 10, channel="withdrawal"),
              xfer("t2", "U1", "card:1", 2300, 20, channel="withdrawal")]
    assert [w.rule_id for w in run(detector(*cashout_rules(True)), events)] == ["split", "rapid"]
    slow = [disb("d1", "U1", 5000, 0, loan="L1"), xfer("t1", "U1", "card:1", 4900, 300, channel="withdrawal")]
    assert [w.rule_id for w in run(detector(*cashout_rules(True)), slow)] == ["split"]


def test_the_loader_refuses_self_suppression_and_warns_on_links_that_cannot_work(tmp_path):
    (tmp_path / "r.yaml").write_text(textwrap.dedent("""\
        rules:
          - rule: strict
            kind: rapid_cashout
            desc: strict
            severity: high
            cooldown: {subject: loan, for: 1d}
          - rule: by-account
            kind: rapid_cashout
            desc: keyed by account
            severity: low
            cooldown: {subject: account, for: 1d}
            suppressed_by: [strict, stirct]
          - rule: itself
            kind: rapid_cashout
            desc: itself
            severity: low
            cooldown: {subject: loan, for: 1d}
            suppressed_by: [itself]
        """))
    result = check_rules(tmp_path)
    errors = [str(e) for e in result.errors]
    warnings = [str(w) for w in result.warnings]
    assert any("r.yaml:13" in e and "cannot suppress itself" in e for e in errors), errors
    assert any("no rule 'stirct'" in w and "did you mean 'strict'" in w for w in warnings), warnings
    assert any("'strict' keys its cooldown by loan" in w and "this rule by account" in w for w in warnings), warnings
