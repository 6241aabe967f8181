"""device_burst: many borrowers, one device (or IP), a short window."""

from __future__ import annotations

from detection_helpers import detector, disb, rule, run


def burst(n=3, gap=20, device="dev-1", ips=None):
    return [disb(f"d{i}", f"U{i}", 3000, i * gap, loan=f"L{i}", device=device, ip=(ips or [None] * n)[i])
            for i in range(n)]


def test_three_borrowers_on_one_device():
    (warning,) = run(detector(rule("device_burst")), burst())
    assert warning.subject == "device:dev-1" and warning.accounts == ("U2", "U0", "U1")
    assert warning.loan_ids == ("L0", "L1", "L2") and warning.txn_ids == ("d0", "d1", "d2")
    assert warning.amount == 900000


def test_two_borrowers_are_one_short_and_one_borrower_twice_counts_once():
    assert run(detector(rule("device_burst")), burst(n=2)) == []
    same = [disb(f"d{i}", "U0" if i < 2 else "U1", 3000, i, device="dev-1") for i in range(3)]
    assert run(detector(rule("device_burst")), same) == []


def test_spread_over_more_than_within_is_quiet():
    assert run(detector(rule("device_burst", params={"within": "39m"})), burst()) == []


def test_ip_key():
    events = burst(device=None, ips=["10.0.0.7"] * 3)
    assert run(detector(rule("device_burst")), events) == []
    assert len(run(detector(rule("device_burst", params={"key": "ip"})), events)) == 1
    assert len(run(detector(rule("device_burst", params={"key": "device_or_ip"})), events)) == 1


def test_small_loans_below_min_amount_do_not_count():
    assert run(detector(rule("device_burst", params={"min_amount": 3001})), burst()) == []
