"""fan_in and fan_out: many distinct counterparties within a window, and their benign look-alikes."""

from __future__ import annotations

from detection_helpers import detector, disb, rule, run, xfer


def funnel(n=5, amount=1900, gap=10):
    """n borrowers each take a loan and forward most of it to the collector C."""
    events = []
    for i in range(n):
        events.append(disb(f"d{i}", f"B{i}", 2000, i * gap, loan=f"L{i}"))
        events.append(xfer(f"t{i}", f"B{i}", "C", amount, i * gap + 5))
    return events


def test_batch_borrowers_funnelling_loans_to_a_collector():
    (warning,) = run(detector(rule("fan_in")), funnel())
    assert warning.subject == "C" and warning.accounts == ("C", "B0", "B1", "B2", "B3", "B4")
    assert warning.loan_ids == ("L0", "L1", "L2", "L3", "L4")
    assert warning.txn_ids == ("t0", "t1", "t2", "t3", "t4") and warning.amount == 950000
    assert warning.summary == "5 accounts sent 9500.00 CNY to C within 40 min (100% traced to loans)"


def test_one_source_short_is_quiet():
    assert run(detector(rule("fan_in")), funnel(n=4)) == []
    assert len(run(detector(rule("fan_in", params={"min_sources": 4})), funnel(n=4))) == 1


def test_sources_outside_the_window_do_not_count():
    assert run(detector(rule("fan_in", params={"within": "39m"})), funnel()) == []


def test_min_total_and_min_amount():
    assert run(detector(rule("fan_in", params={"min_total": 9501})), funnel()) == []
    assert run(detector(rule("fan_in", params={"min_amount": 1901})), funnel()) == []
    assert len(run(detector(rule("fan_in", params={"min_amount": 1900, "min_total": 9500})), funnel())) == 1


def test_friends_splitting_a_bill_are_quiet_even_without_the_loan_condition():
    dinner = [xfer(f"f{i}", f"F{i}", "HOST", 45, i) for i in range(4)]
    assert run(detector(rule("fan_in", params={"require_loan_money": False})), dinner) == []
    assert run(detector(rule("fan_in", params={"require_loan_money": False, "min_sources": 3,
                                               "min_total": 1000})), dinner) == []


def test_a_merchant_collecting_payments_is_not_p2p_fan_in():
    shop = [xfer(f"p{i}", f"U{i}", "SHOP", 100, i, channel="merchant", mcc="5411") for i in range(20)]
    assert run(detector(rule("fan_in", params={"require_loan_money": False})), shop) == []


def test_non_loan_money_fan_in_needs_require_loan_money_false():
    plain = [xfer(f"t{i}", f"S{i}", "C", 500, i) for i in range(6)]
    assert run(detector(rule("fan_in")), plain) == []
    assert len(run(detector(rule("fan_in", params={"require_loan_money": False})), plain)) == 1


def test_loan_dispersed_to_many_mules():
    events = [disb("d1", "B", 10000, 0, loan="L1")] + [xfer(f"t{i}", "B", f"M{i}", 1900, 1 + i) for i in range(5)]
    (warning,) = run(detector(rule("fan_out")), events)
    assert warning.subject == "B" and warning.accounts == ("B", "M0", "M1", "M2", "M3", "M4")
    assert warning.loan_ids == ("L1",) and warning.amount == 950000
    assert run(detector(rule("fan_out", params={"min_targets": 6})), events) == []


def test_salary_run_of_non_loan_money_is_quiet():
    payroll = [xfer(f"s{i}", "ACME", f"E{i}", 8000, i) for i in range(50)]
    assert run(detector(rule("fan_out")), payroll) == []


def test_fan_out_min_loan_share():
    # 1000 of loan money on top of untraced money: each transfer is at most ~20% loan money
    events = [disb("d1", "B", 1000, 0, loan="L1")] + [xfer(f"t{i}", "B", f"M{i}", 1000, 1 + i) for i in range(5)]
    assert run(detector(rule("fan_out")), events) == []
    assert run(detector(rule("fan_out", params={"min_loan_share": 0.0})), events) == []   # only t0 carries loan


def test_sources_arriving_out_of_order_within_lateness_still_count():
    events = funnel()
    late_first = events[:2] + events[4:] + events[2:4]     # B1's loan and transfer arrive last, 20-35 min late
    det = detector(rule("fan_in"), lateness_ms=60 * 60_000)
    (warning,) = run(det, late_first)
    assert warning.accounts == ("C", "B0", "B1", "B2", "B3", "B4") and warning.txn_ids[-1] == "t4"
    assert det.stats()["late"] == 0
    strict = detector(rule("fan_in"), lateness_ms=60_000)
    (warning,) = run(strict, late_first)                   # late, but inside the window: still recorded
    assert strict.stats()["late"] == 2 and warning.amount == 950000
