"""scatter_gather (A -> many -> C) and gather_scatter (many -> M -> many)."""

from __future__ import annotations

from detection_helpers import detector, rule, run, xfer


def scatter_gather(n=3, gather_minutes=30):
    events = [xfer(f"s{i}", "A", f"X{i}", 1000, i) for i in range(n)]
    events += [xfer(f"g{i}", f"X{i}", "C", 950, gather_minutes + i) for i in range(n)]
    return events


def test_scatter_then_gather_through_three_intermediaries():
    (warning,) = run(detector(rule("scatter_gather")), scatter_gather())
    assert warning.subject == "A->C" and warning.accounts == ("A", "C", "X0", "X1", "X2")
    assert warning.txn_ids == ("s0", "s1", "s2", "g0", "g1", "g2") and warning.amount == 285000
    assert warning.evidence["paths"] == [["A", "X0", "C"], ["A", "X1", "C"], ["A", "X2", "C"]]


def test_two_intermediaries_are_one_short():
    assert run(detector(rule("scatter_gather")), scatter_gather(n=2)) == []


def test_gather_before_scatter_is_not_the_pattern():
    events = [xfer(f"g{i}", f"X{i}", "C", 950, i) for i in range(3)]
    events += [xfer(f"s{i}", "A", f"X{i}", 1000, 10 + i) for i in range(3)]
    assert run(detector(rule("scatter_gather")), events) == []


def test_scatter_gather_outside_the_window_is_quiet():
    assert run(detector(rule("scatter_gather", params={"within": "30m"})), scatter_gather(gather_minutes=40)) == []


def hub(n_in=5, n_out=5):
    events = [xfer(f"i{i}", f"S{i}", "M", 1000, i) for i in range(n_in)]
    events += [xfer(f"o{i}", "M", f"T{i}", 900, 20 + i) for i in range(n_out)]
    return events


def test_hub_gathering_and_scattering():
    (warning,) = run(detector(rule("gather_scatter")), hub())
    assert warning.subject == "M" and warning.accounts[0] == "M" and len(warning.accounts) == 11
    assert warning.amount == 500000 and warning.evidence["targets"] == 5 and warning.txn_ids[-1] == "o4"


def test_hub_one_short_on_either_side_is_quiet():
    assert run(detector(rule("gather_scatter")), hub(n_in=4)) == []
    assert run(detector(rule("gather_scatter")), hub(n_out=4)) == []


def test_payroll_scatters_without_gathering():
    events = [xfer("funding", "BANK", "ACME", 100000, 0)] + [xfer(f"s{i}", "ACME", f"E{i}", 8000, 1 + i)
                                                           for i in range(20)]
    assert run(detector(rule("gather_scatter")), events) == []


def test_scatter_gather_min_total_and_loan_money():
    assert run(detector(rule("scatter_gather", params={"min_total": 2851})), scatter_gather()) == []
    assert len(run(detector(rule("scatter_gather", params={"min_total": 2850})), scatter_gather())) == 1
    assert run(detector(rule("scatter_gather", params={"require_loan_money": True})), scatter_gather()) == []
    from detection_helpers import disb
    funded = [disb("d", "A", 3000, -1, loan="L1")] + scatter_gather()
    (warning,) = run(detector(rule("scatter_gather", params={"require_loan_money": True})), funded)
    assert warning.loan_ids == ("L1",)


def test_gather_scatter_min_total():
    assert run(detector(rule("gather_scatter", params={"min_total": 5001})), hub()) == []
    assert len(run(detector(rule("gather_scatter", params={"min_total": 5000})), hub())) == 1
