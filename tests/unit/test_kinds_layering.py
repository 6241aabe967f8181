"""layering: fast, nearly lossless runs of hops of the same money."""

from __future__ import annotations

from detection_helpers import detector, disb, rule, run, xfer


def layering(**params):
    return detector(rule("layering", params=params))


def hops(amounts=(4900, 4800, 4700), gaps=(10, 10, 10)):
    events = [disb("d1", "U1", 5000, 0, loan="L1")]
    minutes, accounts = 0, ["U1", "U2", "U3", "U4", "U5", "U6"]
    for i, (amount, gap) in enumerate(zip(amounts, gaps)):
        minutes += gap
        events.append(xfer(f"t{i + 1}", accounts[i], accounts[i + 1], amount, minutes))
    return events


def test_three_fast_hops_are_layering():
    (warning,) = run(layering(), hops())
    assert warning.subject == "L1" and warning.accounts == ("U1", "U2", "U3", "U4")
    assert warning.txn_ids == ("d1", "t1", "t2", "t3") and warning.amount == 470000
    assert "passed through 4 accounts in 3 hops within 20 min, keeping 95%" in warning.summary
    assert warning.evidence["max_dwell_s"] == 600


def test_two_hops_are_one_short():
    assert run(layering(), hops(amounts=(4900, 4800), gaps=(10, 10))) == []
    assert len(run(layering(min_hops=2), hops(amounts=(4900, 4800), gaps=(10, 10)))) == 1


def test_a_long_rest_breaks_the_run():
    assert run(layering(max_dwell="30m"), hops(gaps=(10, 31, 10))) == []
    assert len(run(layering(max_dwell="31m"), hops(gaps=(10, 31, 10)))) == 1


def test_a_hop_keeping_back_too_much_breaks_the_run():
    assert run(layering(max_decay=0.2), hops(amounts=(4900, 3900, 3800))) == []   # 3900/4900 = 0.796
    assert len(run(layering(max_decay=0.21), hops(amounts=(4900, 3900, 3800)))) == 1


def test_runs_slower_than_within_are_quiet():
    assert run(layering(within="19m"), hops()) == []
    assert len(run(layering(within="20m"), hops())) == 1


def test_untraced_money_needs_require_loan_money_false_and_inflow_tracing():
    from stream.detection.tracer import TracerOptions
    events = hops()[1:]
    events[0] = xfer("t1", "U1", "U2", 4900, 10)
    assert run(layering(), events) == []
    traced = detector(rule("layering", params={"require_loan_money": False}),
                      tracer=TracerOptions(trace_inflows_above=100_000))
    (warning,) = run(traced, events + [xfer("t4", "U4", "U5", 4600, 40)])
    assert warning.loan_ids == () and warning.subject == "t1"


def test_a_run_ending_in_a_withdrawal_lists_the_card_in_the_path_not_in_accounts():
    events = hops()[:3] + [xfer("t3", "U3", "6222", 4700, 30, channel="withdrawal")]
    (warning,) = run(layering(), events)
    assert warning.accounts == ("U1", "U2", "U3")
    assert warning.evidence["paths"] == [["U1", "U2", "U3", "card:6222"]]
