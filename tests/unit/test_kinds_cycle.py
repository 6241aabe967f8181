"""cycle: money returns to where it left through a time-respecting chain."""

from __future__ import annotations

from detection_helpers import detector, rule, run, xfer

from stream.detection.kinds.cycle import canonical


def ring(amounts=(1000, 980, 960), minutes=(0, 10, 20), accounts=("A", "B", "C")):
    n = len(accounts)
    return [xfer(f"c{i}", accounts[i], accounts[(i + 1) % n], amount, minute)
            for i, (amount, minute) in enumerate(zip(amounts, minutes))]


def test_three_account_round_trip():
    (warning,) = run(detector(rule("cycle")), ring())
    assert warning.subject == "A>B>C" and warning.accounts == ("A", "B", "C")
    assert warning.txn_ids == ("c0", "c1", "c2") and warning.amount == 96000
    assert warning.evidence["paths"] == [["A", "B", "C", "A"]]
    assert "left A and came back (96%) through 3 transfers within 20 min" in warning.summary


def test_out_of_time_order_chain_is_not_a_cycle():
    assert run(detector(rule("cycle")), ring(minutes=(10, 0, 20))) == []


def test_losing_too_much_on_the_way_is_quiet():
    assert run(detector(rule("cycle")), ring(amounts=(1000, 790, 780))) == []
    assert len(run(detector(rule("cycle", params={"min_ratio": 0.78})), ring(amounts=(1000, 790, 780)))) == 1


def test_length_bounds():
    five = ring(amounts=(1000,) * 5, minutes=(0, 1, 2, 3, 4), accounts=("A", "B", "C", "D", "E"))
    assert run(detector(rule("cycle")), five) == []                                  # max_len 4
    assert len(run(detector(rule("cycle", params={"max_len": 5})), five)) == 1
    payback = [xfer("p1", "A", "B", 50, 0), xfer("p2", "B", "A", 50, 60)]
    assert run(detector(rule("cycle")), payback) == []                               # min_len 3: friends
    assert len(run(detector(rule("cycle", params={"min_len": 2})), payback)) == 1


def test_cycle_slower_than_within_is_quiet():
    assert run(detector(rule("cycle", params={"within": "19m"})), ring()) == []


def test_the_same_cycle_from_any_start_has_one_name():
    assert canonical(("B", "C", "A")) == canonical(("A", "B", "C")) == "A>B>C"


def test_cycles_of_small_sums_are_ignored_below_min_amount():
    assert run(detector(rule("cycle", params={"min_amount": 961})), ring()) == []
    assert len(run(detector(rule("cycle", params={"min_amount": 960})), ring())) == 1


def test_cycle_carrying_a_loan_names_it():
    from detection_helpers import disb
    (warning,) = run(detector(rule("cycle")), [disb("d", "A", 1000, -1, loan="L9")] + ring())
    assert warning.loan_ids == ("L9",)
