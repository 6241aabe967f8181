"""identity_ring and account_takeover: identity links kept per key, convergence, takeover of an established
account, the `finding` features a where reads, bounds and expiry of the identity index."""

from __future__ import annotations

from types import MappingProxyType

import pytest

from detection_helpers import at, detector, disb, rule, run
from stream.detection.identity import IDENTIFIERS_PER_ACCOUNT, Identities, identity_keys
from stream.detection.kinds.identity_ring import linked_groups
from stream.model.events import Disbursement, Transfer
from stream.rules.expr import ExprError, compile_where
from stream.rules.schema import schema_of_kind
from stream.detection.kinds import KINDS


def send(event_id, src, dst, units, minutes, *, channel="p2p", mcc=None, device=None, ip=None):
    return Transfer(event_id=event_id, ts=at(minutes), src=src, dst=dst, amount=round(units * 100),
                    channel=channel, merchant_category=mcc, device_id=device, ip=ip)


def loan_with(event_id, account, units, minutes, **extra):
    return Disbursement(event_id=event_id, ts=at(minutes), loan_id=f"L-{event_id}", account=account,
                        amount=round(units * 100), device_id=extra.pop("device", None), ip=extra.pop("ip", None),
                        extra=MappingProxyType(extra))


def ring(n=3, *, collector="C1", gap_h=10, phone=None):
    """`n` borrowers on distinct devices and IPs, linked only by `phone` (an extra field) when given."""
    events = []
    for i in range(n):
        extra = {"phone_hash": phone} if phone else {}
        events.append(loan_with(f"d{i}", f"R{i}", 4000, i * gap_h * 60, device=f"dev-{i}", ip=f"10.0.0.{i}",
                                **extra))
        events.append(send(f"t{i}", f"R{i}", collector, 3900, i * gap_h * 60 + 30))
    return events


def test_borrowers_linked_only_by_a_configured_identity_field_converge():
    events = ring(phone="ph-77")
    assert run(detector(rule("identity_ring")), events) == []        # the field is not an identifier by default
    (warning,) = run(detector(rule("identity_ring"), identity_fields=("phone_hash",)), events)
    assert warning.subject == "C1" and warning.accounts == ("C1", "R0", "R1", "R2")
    assert warning.loan_ids == ("L-d0", "L-d1", "L-d2")
    assert warning.evidence["identifiers"] == ["phone_hash:ph-77"]
    assert warning.txn_ids[:3] == ("d0", "d1", "d2")


def test_unlinked_borrowers_paying_one_account_are_not_a_ring():
    assert run(detector(rule("identity_ring"), identity_fields=("phone_hash",)), ring()) == []


def test_a_group_larger_than_max_group_is_a_shared_network():
    events = ring(n=4, phone="ph-1")
    det = detector(rule("identity_ring", params={"max_group": 3}), identity_fields=("phone_hash",))
    fired = run(det, events)
    assert [w.evidence["accounts"] for w in fired] == [3]        # at three it counts; the fourth makes it public


def test_loans_spread_wider_than_within_do_not_link_up():
    det = detector(rule("identity_ring", params={"within": "15h"}), identity_fields=("phone_hash",))
    assert run(det, ring(phone="p", gap_h=10)) == []


def test_linked_groups_join_through_chains_of_shared_identifiers():
    groups = linked_groups({"A": {"device:1"}, "B": {"device:1", "ip:9"}, "C": {"ip:9"}, "D": {"ip:5"}})
    assert groups == [["A", "B", "C"], ["D"]]


def established(account="A1", device="a-phone", ip="10.4.0.1"):
    return [send("h1", account, "grocer", 120, 0, channel="merchant", mcc="5411", device=device, ip=ip),
            send("h2", account, "A9", 50, 20 * 60, device=device, ip=ip)]


def test_a_loan_from_a_strangers_device_that_leaves_at_once_is_a_takeover():
    events = [*established(), disb("d1", "A1", 8000, 40 * 60, loan="LA", device="thief", ip="10.99.0.1"),
              send("t1", "A1", "MULE", 3000, 40 * 60 + 5), send("t2", "A1", "MULE2", 3000, 40 * 60 + 9)]
    (warning,) = run(detector(rule("account_takeover")), events)
    assert warning.subject == "LA" and warning.accounts == ("A1", "MULE", "MULE2")
    assert warning.txn_ids == ("d1", "t1", "t2")      # the transfer that took it past 70% raised it
    assert warning.evidence["device_is_new"] and warning.evidence["ip_is_new"]
    assert warning.evidence["account_age_s"] == 40 * 3600


def where_of(kind, text):
    where, _ = compile_where(text, {}, schema=schema_of_kind(KINDS[kind]))
    return where


def test_the_where_reads_what_the_kind_found():
    events = [*established(), disb("d1", "A1", 8000, 40 * 60, loan="LA", device="new-phone", ip="10.4.0.1"),
              send("t1", "A1", "MULE", 7900, 40 * 60 + 5)]
    assert len(run(detector(rule("account_takeover")), events)) == 1
    assert run(detector(rule("account_takeover", where=where_of("account_takeover", "finding.ip_is_new"))),
               events) == []
    older = where_of("account_takeover", "finding.account_age_h >= 48")
    assert run(detector(rule("account_takeover", where=older)), events) == []
    younger = where_of("account_takeover", "finding.account_age_h >= 40 and not finding.ip_is_new")
    assert len(run(detector(rule("account_takeover", where=younger)), events)) == 1


def test_where_features_are_checked_at_load():
    with pytest.raises(ExprError, match="did you mean finding.device_is_new"):
        where_of("account_takeover", "finding.device_is_nwe")
    with pytest.raises(ExprError, match="computes no features"):
        where_of("fan_in", "finding.device_is_new")
    with pytest.raises(ExprError, match="write 2 without quotes"):
        where_of("identity_ring", 'finding.accounts > "2"')


def test_the_owner_on_a_new_phone_spending_slowly_and_a_too_young_account_are_not_takeovers():
    slow = [*established(), disb("d1", "A1", 6000, 30 * 60, loan="LB", device="new", ip="10.4.0.1"),
            send("t1", "A1", "shop", 2500, 31 * 60, channel="merchant", mcc="5712"),
            send("t2", "A1", "A2", 3000, 30 * 60 + 180)]          # the rest paid on after the 2h
    assert run(detector(rule("account_takeover", params={"channels": ["p2p", "withdrawal"]})), slow) == []
    young = [send("h1", "Y1", "grocer", 10, 0, device="y", ip="10.1.1.1"),
             disb("d1", "Y1", 6000, 60, loan="LY", device="other", ip="10.2.2.2"), send("t1", "Y1", "M", 6000, 65)]
    assert run(detector(rule("account_takeover")), young) == []
    assert len(run(detector(rule("account_takeover", params={"min_account_age": "30m"})), young)) == 1


def test_account_identifiers_are_bounded_and_expire_with_the_window():
    index = Identities()
    for n in range(IDENTIFIERS_PER_ACCOUNT + 5):
        index.saw("A", (f"device:{n}",), at(n))
    assert len(index.used("A")) == IDENTIFIERS_PER_ACCOUNT and "device:0" not in index.used("A")
    index.saw("B", ("ip:1",), at(0))
    index.expire(at(10))
    assert "B" not in index.accounts                              # nothing left in the window
    assert index.accounts["A"].first_seen == at(10)               # still active: seen since the window began
    assert all(ts >= at(10) for ts in index.used("A").values())


def test_identity_keys_take_only_plain_values_of_the_configured_fields():
    event = loan_with("d1", "A", 100, 0, device="d", ip="1.2.3.4", phone="p1", batch=["x"], flag=True,
                      long="x" * 300)
    assert identity_keys(event) == ("device:d", "ip:1.2.3.4")
    assert identity_keys(event, ("phone", "batch", "flag", "long", "absent")) == ("device:d", "ip:1.2.3.4",
                                                                                  "phone:p1")


def test_the_same_warnings_for_any_partition_count():
    events = [*ring(phone="ph"), *established(), disb("dA", "A1", 8000, 40 * 60, loan="LA", device="t", ip="9.9.9.9"),
              send("tA", "A1", "MULE", 7900, 40 * 60 + 5)]
    events.sort(key=lambda e: e.ts)
    rules = (rule("identity_ring"), rule("account_takeover"))
    one = [w.to_json() for w in run(detector(*rules, identity_fields=("phone_hash",)), events)]
    assert len(one) == 2
    for count in (2, 5):
        assert [w.to_json() for w in run(detector(*rules, identity_fields=("phone_hash",), partitions=count),
                                         events)] == one
