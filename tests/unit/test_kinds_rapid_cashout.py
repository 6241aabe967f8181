"""rapid_cashout: share of a loan reaching cash-out sinks in time, within max_hops."""

from __future__ import annotations

from detection_helpers import MIN, detector, disb, rule, run, xfer


def cashout(**params):
    return detector(rule("rapid_cashout", params=params))


def chain(withdraw_minutes=25, last_amount=4850, channel="withdrawal", mcc=None):
    return [disb("d1", "U1", 5000, 0, loan="L-77"),
            xfer("t1", "U1", "U2", 4900, 5),
            xfer("t2", "U2", "6222", last_amount, withdraw_minutes, channel=channel, mcc=mcc)]


def test_two_hop_cashout_is_reported_with_evidence():
    (warning,) = run(cashout(), chain())
    assert warning.kind == "rapid_cashout" and warning.subject == "L-77" and warning.loan_ids == ("L-77",)
    assert warning.summary == "97% of loan L-77 (5000.00 CNY) reached cash-out sinks within 25 min through 2 hops"
    assert warning.accounts == ("U1", "U2") and warning.txn_ids == ("d1", "t1", "t2")
    # 0.97 is 90% of the way from min_ratio 0.7 to all of it; 25 minutes of the 2 h leave 79%: 0.5 + 0.5 x mean
    assert warning.amount == 485000 and warning.score == 0.9229
    assert warning.evidence["paths"] == [["U1", "U2", "card:6222"]]
    assert warning.evidence["hops"] == 2 and warning.evidence["elapsed_s"] == 25 * 60


def test_share_below_min_ratio_is_quiet():
    assert run(cashout(min_ratio=0.98), chain()) == []
    assert len(run(cashout(min_ratio=0.97), chain())) == 1


def test_cashout_after_within_is_quiet():
    assert run(cashout(within="24m"), chain(withdraw_minutes=25)) == []
    assert len(run(cashout(within="25m"), chain(withdraw_minutes=25))) == 1


def test_more_hops_than_max_hops_is_quiet():
    assert run(cashout(max_hops=1), chain()) == []


def test_small_loans_below_min_amount_are_ignored():
    assert run(cashout(min_amount=5001), chain()) == []
    assert len(run(cashout(min_amount=5000), chain())) == 1


def test_cash_like_merchant_counts_but_an_electronics_purchase_does_not():
    assert len(run(cashout(), chain(channel="merchant", mcc="6051"))) == 1
    assert run(cashout(), chain(channel="merchant", mcc="5732")) == []


def test_sinks_from_a_shared_list_reference():
    assert run(cashout(sinks_merchant_categories="cash_mccs"), chain(channel="merchant", mcc="7995")) == []
    assert len(run(cashout(sinks_merchant_categories="cash_mccs"), chain(channel="merchant", mcc="6011"))) == 1


def test_several_small_withdrawals_add_up():
    events = [disb("d1", "U1", 1000, 0, loan="L1")] + [
        xfer(f"w{i}", "U1", f"card{i}", 200, 1 + i, channel="withdrawal") for i in range(4)]
    warnings = run(cashout(), events)
    assert [w.txn_ids[-1] for w in warnings] == ["w3"]          # 80% reached only with the fourth
    assert warnings[0].amount == 80000


def test_unknown_money_withdrawn_is_not_loan_cashout():
    assert run(cashout(), [xfer("t1", "U1", "6222", 5000, 0, channel="withdrawal")]) == []


def test_late_withdrawal_within_lateness_still_counts():
    det = cashout()
    events = [disb("d1", "U1", 5000, 0, loan="L-77"),
              xfer("other", "X", "Y", 1, 12),
              xfer("t2", "U1", "6222", 4000, 10, channel="withdrawal")]   # 2 minutes behind the newest event
    (warning,) = run(det, events)
    assert warning.event_ts - warning.first_ts == 10 * MIN
