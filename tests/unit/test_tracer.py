"""FundTracer: allocation policies, unknown-origin money, multi-hop paths, exits, caps and expiry."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from detection_helpers import HOUR, at, disb, xfer

from stream.detection.tracer import FundTracer, TracerOptions
from stream.model.events import Disbursement, Transfer


def move(tracer: FundTracer, t, external: bool = False, cutoff=None):
    dst = t.dst if not external else f"card:{t.dst}"
    return tracer.transfer(t, dst, external=external, cutoff=cutoff)


def two_loans(policy: str) -> FundTracer:
    tracer = FundTracer(TracerOptions(policy=policy))
    tracer.disburse(disb("d1", "U1", 1000, 0, loan="L1"))
    tracer.disburse(disb("d2", "U1", 3000, 10, loan="L2"))
    return tracer


def carried(allocation) -> dict[str, int]:
    out: dict[str, int] = {}
    for piece in allocation.pieces:
        out[piece.origin.id] = out.get(piece.origin.id, 0) + piece.amount
    return out


def test_lifo_takes_the_latest_money_first():
    tracer = two_loans("lifo")
    allocation = move(tracer, xfer("t1", "U1", "U2", 3500, 20))
    assert carried(allocation) == {"L2": 300000, "L1": 50000} and allocation.unknown == 0
    assert [(lot.origin.id, lot.amount) for lot in tracer.holdings("U1")] == [("L1", 50000)]


def test_fifo_takes_the_oldest_money_first():
    tracer = two_loans("fifo")
    allocation = move(tracer, xfer("t1", "U1", "U2", 1500, 20))
    assert carried(allocation) == {"L1": 100000, "L2": 50000}
    assert [(lot.origin.id, lot.amount) for lot in tracer.holdings("U1")] == [("L2", 250000)]


def test_proportional_takes_from_every_lot_by_its_share_and_conserves_money():
    tracer = two_loans("proportional")
    allocation = move(tracer, xfer("t1", "U1", "U2", 1000, 20))
    assert carried(allocation) == {"L1": 25000, "L2": 75000}
    odd = move(tracer, xfer("t2", "U1", "U3", 0.01 * 7, 21))      # 7 minor units over two lots: no cent lost
    assert sum(carried(odd).values()) == 7 and odd.unknown == 0
    assert sum(lot.amount for lot in tracer.holdings("U1")) == 300000 - 7


def test_outflow_beyond_traced_holdings_is_unknown_origin():
    tracer = two_loans("lifo")
    allocation = move(tracer, xfer("t1", "U1", "U2", 5000, 20))
    assert carried(allocation) == {"L1": 100000, "L2": 300000}
    assert allocation.unknown == 100000 and tracer.counters.unknown_amount == 100000
    assert tracer.holdings("U1") == ()
    nothing = move(tracer, xfer("t2", "U9", "U2", 50, 21))
    assert nothing.pieces == () and nothing.unknown == 5000


def test_multi_hop_path_carries_accounts_txn_ids_and_times():
    tracer = FundTracer()
    tracer.disburse(disb("d1", "U1", 5000, 0, loan="L-77"))
    move(tracer, xfer("t1", "U1", "U2", 4900, 5))
    move(tracer, xfer("t2", "U2", "U3", 4800, 12))
    allocation = move(tracer, xfer("t3", "U3", "6222", 4700, 25, channel="withdrawal"), external=True)
    (piece,) = allocation.pieces
    assert piece.origin.id == "L-77" and piece.hops == 3 and piece.amount == 470000
    assert piece.accounts == ("U1", "U2", "U3", "card:6222")
    assert piece.txn_ids == ("d1", "t1", "t2", "t3")
    assert piece.path[-1].ts - piece.origin.ts == at(25) - at(0)
    exits = tracer.loan("L-77").exits
    assert [(e.channel, e.piece.amount, e.piece.hops) for e in exits] == [("withdrawal", 470000, 3)]
    assert tracer.holdings("U3")[0].amount == 10000     # what U3 kept stays traced there


def test_inflows_above_the_threshold_start_their_own_lots():
    tracer = FundTracer(TracerOptions(trace_inflows_above=100_000))
    move(tracer, xfer("t1", "X", "U1", 999, 0))             # below 1000.00: not traced
    assert tracer.holdings("U1") == ()
    move(tracer, xfer("t2", "X", "U1", 2000, 1))
    (lot,) = tracer.holdings("U1")
    assert not lot.origin.is_loan and lot.origin.id == "t2" and lot.amount == 200000 and lot.hops == 1
    onward = move(tracer, xfer("t3", "U1", "U2", 1500, 2))
    assert onward.pieces[0].accounts == ("X", "U1", "U2") and onward.loan_amount == 0


def test_lots_per_account_are_capped_by_evicting_the_smallest():
    tracer = FundTracer(TracerOptions(max_lots_per_account=3))
    for i, amount in enumerate((50, 10, 30, 40)):
        tracer.disburse(disb(f"d{i}", "U1", amount, i, loan=f"L{i}"))
    assert [lot.origin.id for lot in tracer.holdings("U1")] == ["L0", "L2", "L3"]
    assert tracer.counters.lots_evicted == 1 and tracer.counters.amount_evicted == 1000


def test_tiny_pieces_merge_into_a_lot_of_the_same_origin_or_drop():
    tracer = FundTracer(TracerOptions(min_lot_amount=100))
    tracer.disburse(disb("d1", "U1", 10, 0, loan="L1"))
    move(tracer, xfer("t1", "U1", "U2", 5, 1))
    move(tracer, xfer("t2", "U1", "U2", 0.5, 2))       # 50 minor units of L1: merges with the lot at U2
    assert [(lot.origin.id, lot.amount) for lot in tracer.holdings("U2")] == [("L1", 550)]
    move(tracer, xfer("t3", "U1", "U3", 0.5, 3))       # nothing of L1 at U3 to merge with: dropped
    assert tracer.holdings("U3") == () and tracer.counters.dust_dropped == 1


def test_paths_longer_than_the_limit_stop_being_traced():
    tracer = FundTracer(TracerOptions(max_path_hops=2))
    tracer.disburse(disb("d1", "A", 100, 0, loan="L1"))
    move(tracer, xfer("t1", "A", "B", 100, 1))
    move(tracer, xfer("t2", "B", "C", 100, 2))
    allocation = move(tracer, xfer("t3", "C", "D", 100, 3))
    assert allocation.pieces[0].hops == 3                  # the transfer still reports what it carried
    assert tracer.holdings("D") == () and tracer.counters.path_exhausted == 1


def test_lots_and_loans_expire_with_the_window():
    tracer = FundTracer()
    tracer.disburse(disb("d1", "U1", 100, 0, loan="L1"))
    tracer.disburse(disb("d2", "U2", 100, 60, loan="L2"))
    tracer.expire(at(30))
    assert tracer.holdings("U1") == () and tracer.loan("L1") is None
    assert tracer.holdings("U2") != () and tracer.loan("L2") is not None
    assert tracer.counters.lots_expired == 1
    allocation = move(tracer, xfer("t1", "U2", "U3", 100, 200), cutoff=at(200) - HOUR)   # expired at take time
    assert allocation.pieces == () and allocation.unknown == 10000


def test_unknown_policy_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="lifo, fifo, proportional"):
        TracerOptions(policy="random")


def test_a_late_transfer_cannot_carry_money_that_arrived_after_it():
    tracer = FundTracer()
    tracer.disburse(disb("d1", "U1", 1000, 0, loan="L1"))
    tracer.disburse(disb("d2", "U1", 2000, 30, loan="L2"))
    allocation = move(tracer, xfer("t1", "U1", "U2", 1500, 10))      # happened before L2 arrived
    assert carried(allocation) == {"L1": 100000} and allocation.unknown == 50000
    assert [(lot.origin.id, lot.amount) for lot in tracer.holdings("U1")] == [("L2", 200000)]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["d", "t", "w"]), st.integers(0, 4), st.integers(0, 4),
                          st.integers(1, 500_000)), max_size=60),
       st.sampled_from(["lifo", "fifo", "proportional"]))
def test_every_transfer_is_fully_accounted_for_and_lots_stay_positive(steps, policy):
    tracer = FundTracer(TracerOptions(policy=policy, max_lots_per_account=4))
    for i, (what, a, b, amount) in enumerate(steps):
        src, dst = f"A{a}", f"A{b}"
        if what == "d":
            tracer.disburse(Disbursement(event_id=f"e{i}", ts=at(i), loan_id=f"L{i}", account=src, amount=amount))
            continue
        if src == dst:
            continue
        held = sum(lot.amount for lot in tracer.holdings(src))
        t = Transfer(event_id=f"e{i}", ts=at(i), src=src, dst=dst, amount=amount,
                     channel="p2p" if what == "t" else "withdrawal")
        allocation = tracer.transfer(t, dst if what == "t" else f"card:{dst}", external=what == "w")
        assert sum(piece.amount for piece in allocation.pieces) + allocation.unknown == amount
        assert allocation.unknown == max(0, amount - held)
        assert all(piece.path[-1].txn_id == f"e{i}" for piece in allocation.pieces)
        for account in (src, dst):
            assert all(lot.amount > 0 for lot in tracer.holdings(account))
            assert len(tracer.holdings(account)) <= 4
