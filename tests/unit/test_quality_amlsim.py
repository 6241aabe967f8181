"""The benchmark override files stay loadable against the default pack and keep the choices docs/benchmarks.md
explains: day-scale windows inside the replay window, no rule waiting for loan money that never comes."""

from __future__ import annotations

from pathlib import Path

import pytest

from stream.detection.rulebook import check_rules
from stream.model.timefmt import parse_duration_ms

REPO = Path(__file__).resolve().parents[2]
OVERRIDES = sorted((REPO / "bench" / "overrides").glob("*.override.yaml"))
REPLAY_WINDOW = parse_duration_ms("30d")
# Kinds that start from a disbursement: on a ledger without loans they never fire, so they stay as shipped.
LOAN_KINDS = ("rapid_cashout", "device_burst", "identity_ring", "account_takeover")


def test_the_override_files_are_there():
    assert {path.name for path in OVERRIDES} >= {"amlsim.override.yaml", "amlsim-recall.override.yaml"}


@pytest.mark.parametrize("override", OVERRIDES, ids=lambda path: path.name)
def test_override_loads_cleanly_against_the_default_pack(override):
    result = check_rules(REPO / "rules", override, window_ms=REPLAY_WINDOW)
    assert result.errors == () and result.warnings == (), [str(p) for p in result.errors + result.warnings]
    assert str(override) in result.override_files


@pytest.mark.parametrize("override", OVERRIDES, ids=lambda path: path.name)
def test_enabled_rules_fit_the_replay_window_and_need_no_loans(override):
    ruleset = check_rules(REPO / "rules", override, window_ms=REPLAY_WINDOW).ruleset
    tuned = [rule for rule in ruleset.rules if rule.enabled and rule.kind not in LOAN_KINDS]
    assert tuned, "no rule left to run"
    for rule in tuned:
        assert rule.params["within"] <= REPLAY_WINDOW, rule.id
        assert not rule.params.get("require_loan_money", False), rule.id
        assert rule.params.get("min_amount", 0) == 0 and rule.params.get("min_total", 0) == 0, rule.id
    assert not next(rule for rule in ruleset.rules if rule.id == "layering-chain").enabled
