"""max_counterparties (fan_in, gather_scatter, cycle) and in_time_order (cycle): generic options for ledgers without
loans or with day-scale timestamps. Left at its default, such a parameter changes neither what a rule finds nor
its version (so existing warning ids stay)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from detection_helpers import detector, rule, run, xfer

from stream.detection.kinds import KINDS
from stream.detection.rulebook import load_rules
from stream.rules import loader

RULES_DIR = Path(__file__).resolve().parents[2] / "rules"


def busy(account: str, n: int, *, start: float = -600) -> list:
    """`n` unrelated accounts paid `account` a little, long before the pattern: it is a busy account."""
    return [xfer(f"b{account}{i}", f"P{account}{i}", account, 20, start + i) for i in range(n)]


def fan_in_events(busy_senders: int = 0) -> list:
    return busy("C", busy_senders) + [xfer(f"t{i}", f"S{i}", "C", 500, i * 10) for i in range(4)]


FAN_IN = {"min_sources": 4, "require_loan_money": False, "min_amount": 100}   # the busy payments are 20


def test_fan_in_into_a_quiet_account_is_found_under_the_cap():
    assert len(run(detector(rule("fan_in", params={**FAN_IN, "max_counterparties": 4})), fan_in_events())) == 1


def test_fan_in_into_a_busy_account_is_left_out():
    events = fan_in_events(busy_senders=10)
    assert run(detector(rule("fan_in", params={**FAN_IN, "max_counterparties": 8})), events) == []
    assert len(run(detector(rule("fan_in", params={**FAN_IN, "max_counterparties": 14})), events)) == 1
    assert len(run(detector(rule("fan_in", params=FAN_IN)), events)) == 1       # 0: no limit


def ring_through(extra_on_b: int) -> list:
    return busy("B", extra_on_b) + [xfer("c0", "A", "B", 1000, 0), xfer("c1", "B", "C", 990, 10),
                                    xfer("c2", "C", "A", 980, 20)]


def test_cycle_through_a_busy_account_is_left_out():
    events = ring_through(extra_on_b=6)
    assert run(detector(rule("cycle", params={"max_counterparties": 5})), events) == []
    (warning,) = run(detector(rule("cycle", params={"max_counterparties": 8})), events)
    assert warning.accounts == ("A", "B", "C")
    assert len(run(detector(rule("cycle")), events)) == 1


def hub_events(extra_on_hub: int) -> list:
    events = busy("M", extra_on_hub)
    events += [xfer(f"g{i}", f"S{i}", "M", 800, i) for i in range(3)]
    events += [xfer(f"s{i}", "M", f"T{i}", 700, 30 + i) for i in range(3)]
    return events


def test_gather_scatter_hub_that_is_busy_is_left_out():
    params = {"min_sources": 3, "min_targets": 3}
    assert len(run(detector(rule("gather_scatter", params={**params, "max_counterparties": 6})),
                   hub_events(0))) == 1
    assert run(detector(rule("gather_scatter", params={**params, "max_counterparties": 6})), hub_events(5)) == []
    assert len(run(detector(rule("gather_scatter", params=params)), hub_events(5))) == 1


def test_the_parameter_at_its_default_keeps_every_rule_version():
    """Versions computed with kinds that do not know the parameter at all equal today's: the default pack's
    warning ids did not change when it was added."""
    added = ("max_counterparties", "in_time_order")
    without = {name: dataclasses.replace(kind, params=tuple(p for p in kind.params if p.name not in added))
               for name, kind in KINDS.items()}
    today = load_rules(RULES_DIR)
    before = loader.load_rules(RULES_DIR, kinds=without)
    assert [(r.id, r.version) for r in today.rules] == [(r.id, r.version) for r in before.rules]
    assert today.version == before.version


def test_setting_the_parameter_changes_the_version(tmp_path):
    override = tmp_path / "site.override.yaml"
    override.write_text("overrides:\n  - rule: round-trip\n    params: {max_counterparties: 20}\n")
    default = {r.id: r.version for r in load_rules(RULES_DIR).rules}
    tuned = {r.id: r.version for r in load_rules(RULES_DIR, override).rules}
    assert tuned["round-trip"] != default["round-trip"]
    assert {k: v for k, v in tuned.items() if k != "round-trip"} == {k: v for k, v in default.items()
                                                                     if k != "round-trip"}


def test_cycle_out_of_time_order_counts_only_when_asked():
    """B -> C, then A -> B, then C -> A: read from any account, a leg comes before the one that should feed it, so
    no money can have gone round; the ring of payments is there all the same."""
    events = [xfer("c1", "B", "C", 990, 0), xfer("c0", "A", "B", 1000, 10), xfer("c2", "C", "A", 980, 20)]
    assert run(detector(rule("cycle")), events) == []
    (warning,) = run(detector(rule("cycle", params={"in_time_order": False})), events)
    assert set(warning.accounts) == {"A", "B", "C"} and set(warning.txn_ids) == {"c0", "c1", "c2"}
    assert warning.first_ts == events[0].ts
