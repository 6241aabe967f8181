"""RollingGraph: node naming, watermark, late and too-old events, incremental eviction, duplicates."""

from __future__ import annotations

from detection_helpers import HOUR, MIN, at, disb, xfer

from stream.detection.graph import ACCEPTED, DUPLICATE, LATE, TOO_OLD, EdgeData, RollingGraph


def test_nodes_are_accounts_and_prefixed_external_sinks():
    graph = RollingGraph()
    graph.add(xfer("t1", "U1", "U2", 10, 0))
    graph.add(xfer("t2", "U2", "6222", 10, 1, channel="withdrawal"))
    graph.add(xfer("t3", "U2", "M-shop", 10, 2, channel="merchant", mcc="5732"))
    graph.add(xfer("t4", "U2", "biller", 10, 3, channel="bill_pay"))
    assert set(graph.g.nodes) == {"U1", "U2", "card:6222", "merchant:M-shop", "bill_pay:biller"}
    assert graph.g.nodes["merchant:M-shop"]["mcc"] == "5732"
    assert graph.g.nodes["card:6222"]["ext"] is True and "ext" not in graph.g.nodes["U2"]
    attrs = graph.g.edges["U1", "U2", "t1"]
    assert attrs == EdgeData(ts=at(0), amount=1000, channel="p2p", loan=0, loans=())
    assert graph.edge_count == 4


def test_disbursement_is_recorded_on_the_borrower_node():
    graph = RollingGraph()
    graph.add(disb("d1", "U1", 5000, 0, loan="L-77"))
    assert graph.disbursements("U1") == [(at(0), "L-77", 500000, "d1")]
    assert graph.edge_count == 0 and graph.node_count == 1


def test_watermark_is_max_event_time_minus_lateness():
    graph = RollingGraph(window_ms=HOUR, lateness_ms=5 * MIN)
    assert graph.watermark is None
    graph.add(xfer("t1", "A", "B", 1, 10))
    assert graph.watermark == at(5)
    graph.add(xfer("t2", "A", "B", 1, 7))        # older event: watermark does not move back
    assert graph.watermark == at(5)


def test_late_events_inside_the_window_are_recorded_and_counted():
    graph = RollingGraph(window_ms=HOUR, lateness_ms=5 * MIN)
    assert graph.add(xfer("t1", "A", "B", 1, 60)) == ACCEPTED
    assert graph.add(xfer("t2", "A", "C", 1, 56)) == ACCEPTED      # within lateness: not late
    assert graph.add(xfer("t3", "A", "D", 1, 30)) == LATE          # behind the watermark, inside the window
    assert graph.add(xfer("t4", "A", "E", 1, -10)) == TOO_OLD      # older than watermark - window
    assert graph.late == 1 and graph.too_old == 1
    assert graph.g.has_edge("A", "D", "t3") and not graph.g.has_node("E")


def test_duplicate_event_ids_are_ignored():
    graph = RollingGraph()
    assert graph.add(xfer("t1", "A", "B", 1, 0)) == ACCEPTED
    assert graph.add(xfer("t1", "A", "B", 1, 0)) == DUPLICATE
    assert graph.add(disb("d1", "A", 1, 0)) == ACCEPTED
    assert graph.add(disb("d1", "A", 1, 0)) == DUPLICATE
    assert graph.edge_count == 1 and graph.duplicates == 2


def test_edges_leave_the_window_incrementally_and_isolated_nodes_are_dropped():
    graph = RollingGraph(window_ms=HOUR, lateness_ms=0)
    graph.add(disb("d1", "U1", 100, 0))
    graph.add(xfer("t1", "U1", "U2", 10, 1))
    graph.add(xfer("t2", "U3", "U4", 10, 30))
    graph.add(xfer("t3", "U3", "U5", 10, 45))          # arrives in order
    graph.add(xfer("t4", "U6", "U7", 10, 20))          # late: goes to the heap
    assert graph.edge_count == 4
    graph.add(xfer("t5", "U8", "U9", 10, 61.5))        # cutoff now 1.5 min: d1, t1 expire
    assert not graph.g.has_node("U1") and not graph.g.has_node("U2")
    assert graph.evicted_edges == 1
    graph.add(xfer("t6", "U8", "U9", 10, 81))          # cutoff 21 min: the late t4 expires too
    assert not graph.g.has_node("U6") and graph.g.has_edge("U3", "U4", "t2")
    graph.add(xfer("t7", "U8", "U9", 10, 200))         # everything but t7
    assert set(graph.g.nodes) == {"U8", "U9"} and graph.edge_count == 1
    assert graph.g.number_of_edges() == 1


def test_eviction_touches_only_what_expires():
    graph = RollingGraph(window_ms=HOUR, lateness_ms=0)
    for i in range(1000):
        graph.add(xfer(f"t{i}", f"A{i}", f"B{i}", 1, i * 0.01))   # 10 minutes of events
    queued = len(graph._in_order)
    assert queued == 4 * 1000                                     # four slots per edge, no tuple
    assert graph.evict() == 0 and len(graph._in_order) == queued  # nothing old: nothing scanned away
    graph.add(xfer("late", "X", "Y", 1, 65))                      # cutoff at 5 min: half expire
    assert graph.evicted_edges == 500 and graph.edge_count == 501


def test_in_edges_reads_the_time_range_and_respects_the_cap():
    graph = RollingGraph()
    for i in range(10):
        graph.add(xfer(f"t{i}", f"S{i}", "HUB", 1, i))
    srcs = [src for src, _, _ in graph.in_edges("HUB", at(2), at(7), cap=100)]
    assert sorted(srcs) == [f"S{i}" for i in range(2, 8)]
    capped = [src for src, _, _ in graph.in_edges("HUB", at(0), at(9), cap=3)]
    assert capped == ["S9", "S8", "S7"]   # newest neighbours first


def test_external_parties_are_prefixed_once():
    from stream.detection.graph import sink_node
    from stream.model.events import Transfer
    plain = Transfer(event_id="t1", ts=1, src="U1", dst="6206350252599189", amount=100, channel="withdrawal")
    named = Transfer(event_id="t2", ts=1, src="U1", dst="card:6206350252599189", amount=100, channel="withdrawal")
    shop = Transfer(event_id="t3", ts=1, src="U1", dst="M1", amount=100, channel="merchant")
    friend = Transfer(event_id="t4", ts=1, src="U1", dst="U2", amount=100)
    assert sink_node(plain) == sink_node(named) == "card:6206350252599189"
    assert sink_node(shop) == "merchant:M1"
    assert sink_node(friend) == "U2"


def test_the_queries_kinds_use_count_distinct_counterparties_and_list_edges_between_two_nodes():
    graph = RollingGraph()
    for event in (xfer("a1", "A", "C", 1, 0), xfer("a2", "A", "C", 2, 1), xfer("b1", "B", "C", 3, 2),
                  xfer("c1", "C", "D", 4, 3)):
        graph.add(event)
    assert (graph.sender_count("C"), graph.receiver_count("C"), graph.counterparty_count("C")) == (2, 1, 3)
    assert sorted(graph.edges_between("A", "C")) == ["a1", "a2"]
    assert graph.edges_between("C", "A") == {} and graph.sender_count("nobody") == 0
