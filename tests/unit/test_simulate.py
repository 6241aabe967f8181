"""The labelled ledger simulator: deterministic bytes, valid events, truth that matches the ledger."""

from __future__ import annotations

from collections import Counter

import orjson
import pytest

from stream.cli import main
from stream.errors import EventError
from stream.model.events import Disbursement, Transfer, parse_event
from stream.simulate import (LOOKALIKE_KINDS, PLANTED_KINDS, SimParams, SimulationError, load_truth, simulate,
                             write_ledger)
from stream.simulate.params import FIRST_LOOKALIKE_KINDS
from stream.simulate.world import BIG_TICKET, CASH_LIKE

SMALL = SimParams(seed=11, accounts=800, days=2, instances=3, background_per_day=1500)
HOUR_MS = 3_600_000


@pytest.fixture(scope="module")
def ledger():
    events, truth = simulate(SMALL)
    parsed = [parse_event(e) for e in events]
    return parsed, {e.event_id: e for e in parsed}, truth


def _is_cash_out(event) -> bool:
    return isinstance(event, Transfer) and (
        event.channel == "withdrawal" or (event.channel == "merchant" and event.merchant_category in CASH_LIKE))


def _p2p(instance, by_id):
    return [by_id[t] for t in instance.txn_ids if isinstance(by_id[t], Transfer) and by_id[t].channel == "p2p"]


def _instances(truth, kind):
    found = [i for i in truth.planted if i.kind == kind] or [i for i in truth.lookalikes if i.kind == kind]
    assert len(found) == SMALL.instances, kind
    return found


def test_same_seed_same_bytes_and_other_seed_differs(tmp_path):
    paths = {}
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        params = SimParams(seed=seed, accounts=300, days=1, instances=1, background_per_day=800)
        write_ledger(params, tmp_path / f"{name}.jsonl", tmp_path / f"{name}.json")
        paths[name] = ((tmp_path / f"{name}.jsonl").read_bytes(), (tmp_path / f"{name}.json").read_bytes())
    assert paths["a"] == paths["b"]
    assert paths["a"][0] != paths["c"][0]
    assert paths["a"][1] != paths["c"][1]


def test_every_event_parses_ids_unique_and_time_ordered(ledger):
    parsed, by_id, truth = ledger
    assert len(by_id) == len(parsed) == truth.events
    assert all(a.ts <= b.ts for a, b in zip(parsed, parsed[1:]))
    start = SMALL.start_ms
    assert start <= parsed[0].ts and parsed[-1].ts < start + SMALL.days * 24 * HOUR_MS
    channels = Counter(e.channel for e in parsed if isinstance(e, Transfer))
    assert set(channels) == {"p2p", "withdrawal", "merchant"}
    assert all(e.merchant_category for e in parsed if isinstance(e, Transfer) and e.channel == "merchant")
    loans = [e.loan_id for e in parsed if isinstance(e, Disbursement)]
    assert len(loans) == len(set(loans))


def test_raw_lines_follow_design_format(tmp_path):
    params = SimParams(seed=5, accounts=200, days=1, instances=1, background_per_day=300)
    write_ledger(params, tmp_path / "e.jsonl", tmp_path / "t.json")
    lines = (tmp_path / "e.jsonl").read_bytes().splitlines()
    for line in lines:
        obj = orjson.loads(line)
        assert obj["ts"].endswith("Z") and len(obj["ts"]) == len("2026-03-02T10:15:00.000Z")
        whole, _, cents = obj["amount"].partition(".")
        assert whole.isdigit() and len(cents) == 2 and cents.isdigit()
        assert parse_event(line).to_dict()["ts"] == obj["ts"]


def test_truth_references_exist_and_kinds_are_complete(ledger):
    parsed, by_id, truth = ledger
    loan_ids = {e.loan_id for e in parsed if isinstance(e, Disbursement)}
    assert Counter(i.kind for i in truth.planted) == {k: SMALL.instances for k in PLANTED_KINDS}
    assert Counter(i.kind for i in truth.lookalikes) == {k: SMALL.instances for k in LOOKALIKE_KINDS}
    for instance in truth.planted + truth.lookalikes:
        assert instance.txn_ids and all(t in by_id for t in instance.txn_ids)
        assert all(loan in loan_ids for loan in instance.loan_ids)
        assert [by_id[t].ts for t in instance.txn_ids] == sorted(by_id[t].ts for t in instance.txn_ids)
        touched = {a for t in instance.txn_ids for a in by_id[t].accounts}
        assert set(instance.accounts) <= touched | {instance.key}
    alert_ids = [i.alert_id for i in truth.planted + truth.lookalikes]
    assert alert_ids == list(range(len(alert_ids)))


def test_instances_use_distinct_accounts_and_txns(ledger):
    _, _, truth = ledger
    seen_accounts: Counter[str] = Counter()
    seen_txns: Counter[str] = Counter()
    for instance in truth.planted + truth.lookalikes:
        seen_accounts.update(set(instance.accounts))
        seen_txns.update(instance.txn_ids)
    assert max(seen_accounts.values()) == 1
    assert max(seen_txns.values()) == 1


def test_planted_money_is_loan_money_moving_within_hours(ledger):
    """Within hours, but for the identity typologies: a ring borrows over up to 36 hours (that it is not a burst is
    the point), and the account a taken-over loan went to spends it over days."""
    _, by_id, truth = ledger
    longest = {"identity_ring": 40 * HOUR_MS, "account_takeover": 4 * 24 * HOUR_MS}
    for instance in truth.planted:
        first = by_id[instance.txn_ids[0]]
        assert isinstance(first, Disbursement), instance
        assert instance.loan_ids
        span = by_id[instance.txn_ids[-1]].ts - first.ts
        assert 0 < span <= longest.get(instance.kind, 8 * HOUR_MS), (instance.kind, span)


def test_rapid_cashout_cashes_most_of_the_loan_within_an_hour(ledger):
    _, by_id, truth = ledger
    for instance in _instances(truth, "rapid_cashout"):
        loan = by_id[instance.txn_ids[0]]
        outs = [by_id[t] for t in instance.txn_ids if _is_cash_out(by_id[t])]
        assert outs and sum(o.amount for o in outs) >= 0.9 * loan.amount
        assert max(o.ts for o in outs) - loan.ts <= HOUR_MS
        assert len(instance.accounts) in (1, 2)


def test_layering_is_a_chain_of_3_to_6_hops_keeping_most(ledger):
    _, by_id, truth = ledger
    for instance in _instances(truth, "layering"):
        hops = _p2p(instance, by_id)
        assert 3 <= len(hops) <= 6
        assert [h.src for h in hops] == list(instance.accounts[:-1])
        assert [h.dst for h in hops] == list(instance.accounts[1:])
        for before, after in zip(hops, hops[1:]):
            assert 0.97 * before.amount <= after.amount <= before.amount
            assert after.ts - before.ts <= 30 * 60_000
        assert _is_cash_out(by_id[instance.txn_ids[-1]])
        assert by_id[instance.txn_ids[-1]].src == instance.accounts[-1]


def test_cycle_returns_to_its_origin(ledger):
    _, by_id, truth = ledger
    for instance in _instances(truth, "cycle"):
        hops = _p2p(instance, by_id)
        assert 2 <= len(hops) <= 6
        assert hops[0].src == hops[-1].dst == instance.key == instance.accounts[0]
        assert all(a.dst == b.src for a, b in zip(hops, hops[1:]))
        assert len({h.src for h in hops}) == len(hops)


def test_fan_in_and_device_burst_funnel_loans_to_one_collector(ledger):
    _, by_id, truth = ledger
    for kind in ("fan_in", "device_burst"):
        for instance in _instances(truth, kind):
            collector = instance.accounts[0]
            loans = [by_id[t] for t in instance.txn_ids if isinstance(by_id[t], Disbursement)]
            senders = {h.src for h in _p2p(instance, by_id) if h.dst == collector}
            assert len(loans) >= 5 and senders == {d.account for d in loans}
            assert any(_is_cash_out(by_id[t]) and by_id[t].src == collector for t in instance.txn_ids)
            if kind == "device_burst":
                assert {d.device_id for d in loans} == {instance.key}
                assert len({d.ip for d in loans}) == 1
                assert loans[-1].ts - loans[0].ts <= 90 * 60_000
            else:
                assert len({d.device_id for d in loans}) == len(loans)


def test_fan_out_scatter_gather_and_gather_scatter_shapes(ledger):
    _, by_id, truth = ledger
    for instance in _instances(truth, "fan_out"):
        targets = {h.dst for h in _p2p(instance, by_id) if h.src == instance.key}
        assert len(targets) >= 5
    for instance in _instances(truth, "scatter_gather"):
        hops = _p2p(instance, by_id)
        middles = {h.dst for h in hops if h.src == instance.key}
        gatherers = {h.dst for h in hops if h.src in middles}
        assert len(middles) >= 4 and len(gatherers) == 1
    for instance in _instances(truth, "gather_scatter"):
        hops = _p2p(instance, by_id)
        assert len({h.src for h in hops if h.dst == instance.key}) >= 4
        assert len({h.dst for h in hops if h.src == instance.key}) >= 4


def test_lookalikes_have_their_benign_shape(ledger):
    _, by_id, truth = ledger
    for instance in _instances(truth, "loan_spent_at_once"):
        loan, purchase = (by_id[t] for t in instance.txn_ids)
        assert isinstance(loan, Disbursement) and purchase.merchant_category in BIG_TICKET
        assert purchase.amount >= 0.95 * loan.amount and purchase.ts - loan.ts <= 15 * 60_000
    for instance in _instances(truth, "dinner_split"):
        paybacks = [h for h in _p2p(instance, by_id) if h.dst == instance.key]
        assert 3 <= len(paybacks) <= 6 and by_id[instance.txn_ids[0]].merchant_category == "5812"
    for instance in _instances(truth, "payroll_fan_out"):
        assert not instance.loan_ids
        assert len({h.dst for h in _p2p(instance, by_id) if h.src == instance.key}) >= 10
    for instance in _instances(truth, "merchant_collection"):
        payers = {by_id[t].src for t in instance.txn_ids if by_id[t].dst == instance.key}
        assert len(payers) >= 15
    for instance in _instances(truth, "friends_p2p"):
        assert not instance.loan_ids and len(_p2p(instance, by_id)) >= 4


def test_bad_parameters_are_refused_with_the_reason():
    with pytest.raises(SimulationError, match="accounts must be between 50"):
        SimParams(accounts=10)
    with pytest.raises(SimulationError, match="start must be a date"):
        SimParams(start="March 1st")
    with pytest.raises(SimulationError, match="unknown typology 'smurfing'"):
        SimParams(kinds=("smurfing",))
    with pytest.raises(SimulationError, match="raise --accounts"):
        simulate(SimParams(accounts=60, instances=10, background_per_day=10))


def test_cli_writes_both_files_and_reports_errors(tmp_path, capsys):
    events, truth = tmp_path / "e.jsonl.gz", tmp_path / "t.json"
    code = main(["simulate", "--out", str(events), "--truth", str(truth), "--accounts", "300", "--days", "1",
                 "--instances", "1", "--background-per-day", "200", "--kinds", "cycle,layering"])
    assert code == 0
    loaded = load_truth(truth)
    assert [i.kind for i in loaded.planted] == ["cycle", "layering"]
    assert "wrote" in capsys.readouterr().out
    assert main(["simulate", "--out", str(events), "--truth", str(truth), "--start", "2026-13-01"]) == 1
    assert "start must be a date" in capsys.readouterr().err


def test_bad_events_only_when_asked_each_refused_for_its_labelled_reason():
    events, truth = simulate(SimParams(seed=2, accounts=300, days=1, instances=1, background_per_day=400,
                                       bad_events=20))
    labelled = {b["event_id"]: b["reason"] for b in truth.extra["bad_events"]}
    assert len(labelled) == 20 and len(set(labelled.values())) == 7
    refused, accepted = {}, 0
    for event in events:
        try:
            parse_event(event)
            accepted += 1
        except EventError as exc:
            refused[event["event_id"]] = exc.reason
    assert refused == labelled and accepted == truth.events
    assert "bad_events" not in simulate(SimParams(seed=2, accounts=300, days=1, instances=1,
                                                  background_per_day=400))[1].extra


def test_truth_times_bound_each_instance(ledger):
    _, by_id, truth = ledger
    for instance in truth.planted + truth.lookalikes:
        assert instance.first_ts == by_id[instance.txn_ids[0]].ts
        assert instance.last_ts == by_id[instance.txn_ids[-1]].ts


def test_evasive_variant_is_slower_split_and_labelled():
    params = SimParams(seed=11, accounts=800, days=2, instances=3, background_per_day=300, evasive=1.0)
    events, truth = simulate(params)
    by_id = {e.event_id: e for e in (parse_event(x) for x in events)}
    assert {i.variant for i in truth.planted} == {"evasive"}
    assert all(i.variant is None for i in truth.lookalikes)
    for instance in (i for i in truth.planted if i.kind == "rapid_cashout"):
        loan = by_id[instance.txn_ids[0]]
        outs = [by_id[t] for t in instance.txn_ids if _is_cash_out(by_id[t])]
        assert len(outs) >= 3 and 0.5 * loan.amount <= sum(o.amount for o in outs) <= 0.85 * loan.amount
    plain_span = max(i.last_ts - i.first_ts for i in simulate(SMALL)[1].planted)
    assert max(i.last_ts - i.first_ts for i in truth.planted) > plain_span
    with pytest.raises(SimulationError, match="evasive must be a share between 0 and 1"):
        SimParams(evasive=1.5)


def _content(events) -> list[tuple]:
    """The events without their positional ids (ids follow positions in time, which new instances shift)."""
    return [tuple((k, v) for k, v in sorted(e.items()) if k not in ("event_id", "loan_id")) for e in events]


def test_adding_the_identity_typologies_kept_every_older_instance_of_a_seed():
    """Planting them (after the older instances and look-alikes, from accounts new to the ledger) changes none
    of the older planted instances or the older look-alikes, event for event."""
    older = tuple(k for k in PLANTED_KINDS if k not in ("identity_ring", "account_takeover"))
    options = {"seed": 5, "accounts": 800, "days": 3, "instances": 2, "background_per_day": 1500}

    def instances(kinds):
        events, truth = simulate(SimParams(**options, kinds=kinds))
        by_id = {e["event_id"]: e for e in events}
        keep = [i for i in truth.planted if i.kind in older] + [i for i in truth.lookalikes
                                                                 if i.kind in FIRST_LOOKALIKE_KINDS]
        return [(i.kind, i.accounts, _content(by_id[t] for t in i.txn_ids)) for i in keep]

    before = instances(older)
    assert len(before) == 2 * (len(older) + len(FIRST_LOOKALIKE_KINDS))
    assert instances(PLANTED_KINDS) == before


def test_spread_draws_each_instance_from_wide_ranges_and_zero_draws_nothing():
    assert list(simulate(SimParams(seed=3, accounts=600, days=2, instances=2, spread=0.0))[0]) == \
        list(simulate(SimParams(seed=3, accounts=600, days=2, instances=2))[0])
    events, truth = simulate(SimParams(seed=3, accounts=5000, days=5, instances=12, spread=1.0))
    by_id = {e.event_id: e for e in (parse_event(raw) for raw in events)}
    drawn = [i.drawn for i in truth.planted]
    assert all(i.variant == "spread" and i.drawn for i in truth.planted)
    assert max(d["pace"] for d in drawn) > 4 and max(d["fee"] for d in drawn) > 5
    assert all(d["cashout_share_low"] == 0.6 for d in drawn)          # at spread 1 every cash-out is split
    chains = [len(_p2p(i, by_id)) for i in truth.planted if i.kind == "layering"]
    assert max(chains) > 6 >= 3 <= min(chains)          # longer than the plain 3-6 hops, never shorter
    with pytest.raises(SimulationError, match="spread must be between 0"):
        SimParams(spread=1.5)
