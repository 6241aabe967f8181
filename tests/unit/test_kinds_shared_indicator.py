"""shared_indicator through the real detector: which events are looked up, min_sources, expiry by event time, the
evidence (feed, source, key, reason; never the identifier), `listed()` in a where, partitions, reloads."""

from __future__ import annotations

from msgspec.structs import replace


from detection_helpers import T0, at, detector, disb, rule, run, xfer
from stream.detection.rulebook import check_rules
from stream.indicators.indicator_set import IndicatorSet, Listing
from stream.indicators.keys import ConsortiumKey
from stream.model.events import Transfer
from stream.rules.expr import compile_where
from stream.rules.model import Cooldown

KEY = ConsortiumKey("k1", b"k" * 32)
DAY = 86_400_000


def indicators(*items, keys=(KEY,)) -> IndicatorSet:
    """(type, raw value, source, expires) items."""
    listings: dict = {}
    for kind, value, source, expires in items:
        for key in keys:
            listings.setdefault((kind, key.key_id, key.hash_identifier(kind, value)), {})[source] = Listing(
                source, "rapid_cashout" if kind == "card" else "device_burst", T0 - DAY, T0, expires,
                f"{source}@2026-03-01T00:00:00.000Z")
    return IndicatorSet(listings, {key.key_id: key for key in keys})


LISTED = indicators(("card", "6222000011112222", "lender-a", T0 + DAY), ("device", "dev-farm", "lender-a", T0 + DAY),
                    ("ip", "203.0.113.9", "lender-c", T0 + DAY), ("card", "6222000099998888", "lender-a", T0 + DAY),
                    ("card", "6222000099998888", "lender-b", T0 + DAY))


def withdrawal(event_id, src, card, minutes=0, ip=None):
    return replace(xfer(event_id, src, card, 500, minutes, channel="withdrawal"), ip=ip)


def test_a_withdrawal_to_a_listed_card_and_a_loan_from_a_listed_device_warn():
    det = detector(rule("shared_indicator", cooldown=Cooldown(ms=0)), indicators=LISTED)   # one account, two events
    events = [disb("d1", "B1", 3000, 0, loan="LB1", device="DEV-FARM "), withdrawal("t1", "B1", "card:6222000011112222", 5),
              disb("d2", "B2", 3000, 6, device="dev-own"), withdrawal("t2", "B2", "card:6222000000000000", 7)]
    first, second = run(det, events)
    assert (first.subject, first.loan_ids, first.txn_ids) == ("B1", ("LB1",), ("d1",))
    (evidence,) = first.evidence["indicators"]
    assert evidence["type"] == "device" and evidence["event"] == "disbursement_device"
    assert evidence["sources"] == ["lender-a"] and evidence["key_id"] == "k1"
    assert evidence["feeds"] == ["lender-a@2026-03-01T00:00:00.000Z"] and evidence["reasons"] == ["device_burst"]
    assert "dev-farm" not in str(first.evidence) and "DEV-FARM" not in first.summary
    assert second.txn_ids == ("t1",) and second.loan_ids == ("LB1",)         # the loan money it carried
    assert second.evidence["indicators"][0]["field"] == "dst"
    assert "6222000011112222" not in str(second.evidence)


def test_only_the_chosen_events_and_types_are_looked_up():
    events = [disb("d1", "B1", 3000, 0, device="dev-farm", ip="203.0.113.9"),
              replace(xfer("t1", "B3", "B4", 10, 1), ip="203.0.113.9")]
    (both, by_ip) = run(detector(rule("shared_indicator"), indicators=LISTED), events)
    assert [i["type"] for i in both.evidence["indicators"]] == ["device", "ip"]       # one warning per event
    assert by_ip.subject == "B3" and by_ip.evidence["event"] == "transfer_ip"
    only_cards = rule("shared_indicator", params={"types": ["card"]})
    assert run(detector(only_cards, indicators=LISTED), events) == []
    no_transfer_ip = rule("shared_indicator", params={"events": ["disbursement_device"]})
    assert [w.txn_ids for w in run(detector(no_transfer_ip, indicators=LISTED), events)] == [("d1",)]


def test_min_sources_counts_distinct_institutions():
    two = rule("shared_indicator", params={"min_sources": 2})
    events = [withdrawal("t1", "B1", "card:6222000011112222", 0), withdrawal("t2", "B2", "6222 0000 9999 8888", 1)]
    (warning,) = run(detector(two, indicators=LISTED), events)
    assert warning.subject == "B2" and warning.evidence["sources"] == ["lender-a", "lender-b"]


def test_expiry_is_judged_by_event_time_and_no_set_means_no_warning():
    late = [withdrawal("t1", "B1", "card:6222000011112222", 24 * 60)]           # exactly at expiry
    assert run(detector(rule("shared_indicator"), indicators=LISTED), late) == []
    assert run(detector(rule("shared_indicator")), [withdrawal("t1", "B1", "card:6222000011112222")]) == []


def test_the_same_warnings_for_any_partition_count():
    events = [disb(f"d{i}", f"B{i}", 1000, i, device="dev-farm" if i % 3 == 0 else f"dev-{i}", ip="203.0.113.9"
                   if i % 5 == 0 else None) for i in range(30)]
    events += [withdrawal(f"t{i}", f"B{i}", "card:6222000011112222" if i % 4 == 0 else f"card:62220000{i:08d}", 40 + i)
               for i in range(30)]
    one = [w.to_json() for w in run(detector(rule("shared_indicator"), indicators=LISTED), events)]
    three = [w.to_json() for w in run(detector(rule("shared_indicator"), indicators=LISTED, partitions=3), events)]
    assert len(one) == 18 and sorted(one) == sorted(three)       # 14 loans, 8 withdrawals, 4 in cooldown


def test_a_reloaded_set_is_used_by_the_next_event_and_survives_a_restored_state():
    det = detector(rule("shared_indicator"))
    assert run(det, [withdrawal("t1", "B1", "card:6222000011112222", 0)]) == []
    det.replace_indicators(LISTED)
    assert len(run(det, [withdrawal("t2", "B2", "card:6222000011112222", 1)])) == 1
    import pickle
    other = detector(rule("shared_indicator"), indicators=LISTED)
    other.import_state(pickle.loads(pickle.dumps(det.export_state())))
    assert len(run(other, [withdrawal("t3", "B3", "card:6222000011112222", 2)])) == 1


def test_listed_in_a_where_reads_the_set_by_event_time():
    where, _ = compile_where("listed(transfer.dst)", {})
    cashout = rule("rapid_cashout", where=where)
    events = [disb("d1", "B1", 1000, 0), Transfer(event_id="t1", ts=at(5), src="B1", dst="card:6222000011112222",
                                                  amount=100000, channel="withdrawal")]
    assert len(run(detector(cashout, indicators=LISTED), events)) == 1
    assert run(detector(cashout), events) == []
    assert run(detector(cashout, indicators=indicators(("card", "6222000011112222", "lender-a", at(1)))), events) == []


def test_listed_is_typed_when_the_rules_load(tmp_path):
    (tmp_path / "r.yaml").write_text(
        "rules:\n  - rule: r\n    kind: rapid_cashout\n    desc: d\n    where: listed(transfer.amount)\n"
        "    severity: high\n  - rule: s\n    kind: shared_indicator\n    desc: d\n"
        "    where: listed(event.device_id) or not listed(transfer.dst)\n    severity: high\n"
        "    params: {types: [card, passport]}\n")
    result = check_rules(tmp_path)
    messages = "\n".join(error.located() for error in result.errors)
    assert "listed() looks up an identifier" in messages and "transfer.amount is a number" in messages
    assert "unknown indicator type 'passport'" in messages
