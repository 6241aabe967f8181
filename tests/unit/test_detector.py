"""Detector: dispatch, allow-lists, where, cooldowns, warning ids, determinism, rule swaps, stats."""

from __future__ import annotations

import random

import pytest
from detection_helpers import HOUR, MIN, T0, at, detector, disb, rule, run, xfer

from stream.detection.detector import Detector, incident_key
from stream.detection.kinds import KINDS
from stream.errors import EventError, RuleError
from stream.rules.model import AllowList, Cooldown, RuleSet
from stream.model.warning import make_warning_id


def cashout_story(loan="L-77", borrower="U1", start=0, tag=""):
    return [disb(f"d{tag}", borrower, 5000, start, loan=loan, product="credit_line"),
            xfer(f"t1{tag}", borrower, f"M{tag}", 4900, start + 5),
            xfer(f"t2{tag}", f"M{tag}", "6222", 4850, start + 25, channel="withdrawal")]


def all_rules():
    return [rule(kind) for kind in KINDS]


def synthetic(n=600, seed=7):
    """A noisy ledger with planted funnels, cash-outs and cycles: enough to exercise every kind."""
    rnd = random.Random(seed)
    events, minute = [], 0.0
    for i in range(n):
        minute += rnd.random() * 2
        roll = rnd.random()
        if roll < 0.2:
            events.append(disb(f"d{i}", f"U{rnd.randrange(40)}", rnd.choice([1000, 3000, 5000]), minute,
                               device=f"dev{rnd.randrange(5)}"))
        elif roll < 0.3:
            events.append(xfer(f"w{i}", f"U{rnd.randrange(40)}", f"card{i}", rnd.randrange(100, 3000), minute,
                               channel="withdrawal"))
        else:
            src, dst = rnd.sample(range(40), 2)
            events.append(xfer(f"t{i}", f"U{src}", f"U{dst}", rnd.randrange(100, 3000), minute))
    return events


def test_warning_fields_come_from_rule_finding_and_event():
    det = detector(rule("rapid_cashout", "rapid-cashout", severity="critical"))
    (warning,) = run(det, cashout_story())
    assert warning.warning_id == make_warning_id("rapid-cashout", "1", "L-77")
    assert (warning.rule_id, warning.rule_version, warning.kind) == ("rapid-cashout", "1", "rapid_cashout")
    assert warning.severity == "critical" and warning.notify == ("pager",) and warning.currency == "CNY"
    assert warning.first_ts == at(0) and warning.event_ts == at(25) and warning.detected_at == at(25)


def test_detected_at_comes_from_the_injected_clock():
    det = detector(rule("rapid_cashout"), clock=lambda: 1_800_000_000_000)
    (warning,) = run(det, cashout_story())
    assert warning.detected_at == 1_800_000_000_000 and warning.event_ts == at(25)


def test_same_events_give_identical_warnings_in_any_batch_split_and_fresh_detector():
    events = synthetic()
    first = [w.to_dict() for w in run(detector(*all_rules()), events)]
    assert first, "the synthetic ledger must raise warnings for this test to mean anything"
    det = detector(*all_rules())
    second = []
    for lo, hi in ((0, 7), (7, 250), (250, 251), (251, len(events))):
        second.extend(w.to_dict() for w in run(det, events[lo:hi]))
    assert second == first
    assert [w.to_dict() for w in run(detector(*all_rules()), events)] == first
    assert len({w["kind"] for w in first}) >= 3


def test_allow_listed_event_skips_the_rule_and_allow_listed_primary_account_is_dropped():
    by_event = detector(rule("rapid_cashout", allow=AllowList(pairs=frozenset({("M", "6222")}))))
    assert run(by_event, cashout_story()) == []
    by_account = detector(rule("rapid_cashout", allow=AllowList(accounts=frozenset({"U1"}))))
    assert run(by_account, cashout_story()[:2] + [xfer("t2", "M", "6222", 4850, 25, channel="withdrawal")]) == []
    other = detector(rule("rapid_cashout", allow=AllowList(accounts=frozenset({"U9"}))))
    assert len(run(other, cashout_story())) == 1


def test_where_sees_the_originating_disbursement_for_loan_traced_kinds():
    seen = []

    def only_credit_lines(names):
        seen.append((names["event"].event_id, names["disbursement"].loan_id))
        return names["disbursement"].product == "credit_line"

    def only_mortgages(names):
        return names["disbursement"].product == "mortgage"

    assert len(run(detector(rule("rapid_cashout", where=only_credit_lines)), cashout_story())) == 1
    assert seen == [("t2", "L-77")]
    assert run(detector(rule("rapid_cashout", where=only_mortgages)), cashout_story()) == []


def test_a_failing_where_counts_as_no_match_and_is_counted():
    def broken(names):
        raise TypeError("'<' not supported between instances of 'NoneType' and 'Decimal'")

    det = detector(rule("rapid_cashout", where=broken))
    assert run(det, cashout_story()) == []
    assert det.stats()["where_errors"] == {"rapid-cashout": 1}


def test_cooldown_suppresses_repeats_of_the_same_subject():
    events = [xfer(f"t{i}", f"S{i}", "C", 500, i) for i in range(8)]
    det = detector(rule("fan_in", params={"require_loan_money": False}, cooldown=Cooldown("subject", HOUR)))
    warnings = run(det, events)
    assert len(warnings) == 1 and warnings[0].txn_ids[-1] == "t4"
    assert det.stats()["suppressed"] == {"fan-in": 3}
    later = [xfer(f"u{i}", f"S{i}", "C", 500, 120 + i) for i in range(5)]
    (again,) = run(det, later)
    assert again.warning_id != warnings[0].warning_id              # a new incident, a new id


def test_cooldown_by_account_and_no_cooldown():
    events = [xfer(f"t{i}", f"S{i}", "C", 500, i) for i in range(7)]
    quiet = detector(rule("fan_in", params={"require_loan_money": False}, cooldown=Cooldown("account", HOUR)))
    assert len(run(quiet, events)) == 1
    noisy = detector(rule("fan_in", params={"require_loan_money": False}, cooldown=Cooldown("subject", 0)))
    warnings = run(noisy, events)
    assert len(warnings) == 3 and len({w.warning_id for w in warnings}) == 1   # same incident, same first_ts


def test_loan_cooldown_keeps_one_warning_per_loan():
    events = cashout_story() + [xfer("t3", "U1", "6223", 100, 30, channel="withdrawal")]
    det = detector(rule("rapid_cashout", cooldown=Cooldown("loan", HOUR)))
    assert len(run(det, events)) == 1


def test_incident_key_buckets_by_cooldown_for_account_findings():
    from stream.detection.finding import Finding
    finding = Finding(subject="C", accounts=("C",), loan_ids=(), txn_ids=(), amount=1, first_ts=T0 + 5 * MIN,
                      score=1.0, summary="")
    day = rule("fan_in", cooldown=Cooldown("subject", 24 * HOUR))
    assert incident_key(day, finding, T0 + HOUR) == f"C@{T0 - T0 % (24 * HOUR)}"
    assert incident_key(day, finding, T0 + 25 * HOUR) == f"C@{T0 - T0 % (24 * HOUR) + 24 * HOUR}"
    assert incident_key(rule("fan_in", cooldown=Cooldown("subject", 0)), finding, T0 + HOUR) == f"C@{T0 + 5 * MIN}"
    loan = Finding(subject="L-77", accounts=("U1",), loan_ids=("L-77",), txn_ids=(), amount=1, first_ts=T0,
                   score=1.0, summary="", loan_subject="L-77")
    assert incident_key(day, loan, T0 + 99 * HOUR) == "L-77"


def test_events_older_than_the_window_are_refused_and_counted():
    det = detector(rule("rapid_cashout"), window_ms=HOUR, lateness_ms=5 * MIN)
    run(det, [xfer("now", "X", "Y", 1, 200)])
    refused: list = []
    assert run(det, cashout_story(), refused) == []
    assert [reason for _, reason in refused] == ["too_old"] * 3
    with pytest.raises(EventError, match="too_old: event time .* is older than the window"):
        det.process(cashout_story()[0])
    stats = det.stats()
    assert stats["too_old"] == 4 and stats["events"] == 5 and stats["edges"] == 1


def test_money_older_than_the_window_is_no_longer_traced():
    det = detector(rule("rapid_cashout", params={"within": "3d"}), window_ms=HOUR, lateness_ms=0)
    events = [disb("d", "U1", 5000, 0, loan="L1"), xfer("tick", "X", "Y", 1, 61),
              xfer("w", "U1", "6222", 5000, 62, channel="withdrawal")]
    assert run(det, events) == []
    assert det.stats()["lots"] == 0 and det.stats()["loans"] == 0


def test_replace_rules_keeps_state_and_swaps_atomically():
    det = detector(rule("fan_in"))
    events = cashout_story()
    run(det, events[:2])
    det.replace_rules(RuleSet((rule("rapid_cashout"),)))
    assert [w.kind for w in run(det, events[2:])] == ["rapid_cashout"]
    assert det.rules.rules[0].kind == "rapid_cashout"


def test_disabled_rules_do_not_run_and_unknown_kinds_are_refused():
    assert run(detector(rule("rapid_cashout", enabled=False)), cashout_story()) == []
    bad = rule("rapid_cashout")
    object.__setattr__(bad, "kind", "teleport")
    with pytest.raises(RuleError, match="unknown kind 'teleport'"):
        Detector(RuleSet((bad,)))


def test_stats_report_the_state_and_warnings_per_rule():
    det = detector(rule("rapid_cashout"))
    run(det, cashout_story() + [xfer("t1", "U1", "M", 4900, 5)])      # a redelivered duplicate
    stats = det.stats()
    assert stats["events"] == 4 and stats["duplicates"] == 1 and stats["late"] == 0
    assert stats["nodes"] == 3 and stats["edges"] == 2 and stats["lots"] == 2
    assert stats["warnings"] == {"rapid-cashout": 1} and stats["watermark"] == at(25) - 5 * MIN


def test_freeze_gc_every_moves_long_lived_state_out_of_the_collectors_sight():
    import gc
    det = detector(rule("fan_in"), freeze_gc_every=3)
    try:
        frozen = gc.get_freeze_count()          # what earlier replays in this process left frozen
        run(det, [xfer(f"t{i}", f"S{i}", "C", 1, i) for i in range(2)])
        assert gc.get_freeze_count() == frozen
        run(det, [xfer("t2", "S2", "C", 1, 2)])
        assert gc.get_freeze_count() > frozen
    finally:
        gc.unfreeze()


def test_cooldown_memory_is_forgotten_once_outside_the_window():
    det = detector(rule("fan_in", params={"require_loan_money": False}, cooldown=Cooldown("subject", HOUR)),
                   window_ms=2 * HOUR, lateness_ms=0)
    run(det, [xfer(f"t{i}", f"S{i}", "C", 500, i) for i in range(5)])
    state = det.partitions[0]
    assert len(state.cooldowns) == 1
    run(det, [xfer("tick", "X", "Y", 1, 4 * 60)])          # cooldown ended at 1h04, window now starts at 2h
    assert state.cooldowns == {} and state.cooldown_expiry == []


def test_failures_of_a_compiled_where_are_counted_too():
    """A compiled expression counts its own failures (it must never raise into the stream); the detector's stats
    report them beside the ones it caught itself."""
    from stream.rules.expr import compile_where
    # fan_in findings carry no loan of their own: `disbursement` is None and the comparison fails
    where, _ = compile_where("disbursement.amount >= 1000", {})
    events = [xfer(f"t{i}", f"S{i}", "C", 500, i) for i in range(6)]
    det = detector(rule("fan_in", params={"require_loan_money": False}, where=where))
    assert run(det, events) == []
    assert det.stats()["where_errors"] == {"fan-in": where.stats.failures}
    assert where.stats.failures >= 1


def test_detected_at_given_by_the_caller_wins_over_the_clock():
    det = detector(rule("rapid_cashout"), clock=lambda: 1_800_000_000_000)
    warnings = []
    for event in cashout_story():
        warnings += det.process(event, detected_at=1_900_000_000_000)
    (warning,) = warnings
    assert warning.detected_at == 1_900_000_000_000
