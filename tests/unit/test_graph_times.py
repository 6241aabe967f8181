"""The per-node edge times kept beside NetworkX: `has_senders` and `has_receivers` answer exactly as walking the
adjacency does, on dense random traffic with late events, duplicates, expiry and nodes that leave and come back;
and a kept list is always the sorted times of the node's edges in the window."""

from __future__ import annotations

import random

from detection_helpers import HOUR, MIN, xfer

from stream.detection.graph import RollingGraph

CHANNELS = frozenset({"p2p"})


def _walked(adjacency, since, until, cap, min_amount, require_loan, enough) -> bool:
    return RollingGraph._count(adjacency, since, until, cap, CHANNELS, min_amount, require_loan, enough) >= enough


def _edge_times(adjacency) -> list[int]:
    return sorted(attrs.ts for keydict in adjacency.values() for attrs in keydict.values())


def test_the_bound_never_changes_an_answer_and_the_kept_times_match_the_window():
    rng = random.Random(7)
    graph = RollingGraph(window_ms=2 * HOUR, lateness_ms=10 * MIN)
    accounts = [f"U{n}" for n in range(12)]
    answers = {True: 0, False: 0}
    minute = 0.0
    for n in range(6000):
        minute += rng.random() * 0.8
        late = rng.random() < 0.15
        ts = minute - rng.random() * 25 if late else minute        # out of order; past the lateness: late
        channel = "p2p" if rng.random() < 0.85 else "withdrawal"
        src, dst = rng.sample(accounts, 2)
        event_id = f"t{rng.randrange(n + 1)}" if rng.random() < 0.03 else f"t{n}"   # a few duplicates
        graph.add(xfer(event_id, src, dst, rng.choice((5, 50, 500)), ts, channel=channel))
        node = rng.choice(accounts)
        now = graph.max_ts
        since, until = now - rng.choice((10, 30, 90)) * MIN, now + rng.choice((0, 10)) * MIN
        cap, enough = rng.choice((3, 50)), rng.choice((2, 3, 5))
        min_amount, require_loan = rng.choice((0, 1000)), False
        got = graph.has_senders(node, since, until, cap, CHANNELS, min_amount, require_loan, enough)
        assert got == _walked(graph.g._pred.get(node), since, until, cap, min_amount, require_loan, enough)
        answers[got] += 1
        got = graph.has_receivers(node, since, until, cap, CHANNELS, min_amount, require_loan, enough)
        assert got == _walked(graph.g._succ.get(node), since, until, cap, min_amount, require_loan, enough)
        for kept, adjacency in ((graph._in_times, graph.g._pred), (graph._out_times, graph.g._succ)):
            for held, times in kept.items():
                assert times == _edge_times(adjacency[held]), (n, held)
    assert answers[True] > 300 and answers[False] > 300       # both answers were asked for, often
    assert graph.evicted_edges > 1000 and graph.late > 300     # expiry and late edges were exercised


def test_a_list_is_kept_only_for_nodes_asked_about_and_left_when_its_node_empties():
    graph = RollingGraph(window_ms=HOUR, lateness_ms=0)
    graph.add(xfer("t1", "A", "B", 10, 0))
    graph.add(xfer("t2", "C", "B", 10, 1))
    assert graph._in_times == {} and graph._out_times == {}
    assert graph.has_senders("B", 0, 10**15, 10, CHANNELS, 0, False, 2)
    assert graph._in_times == {"B": [graph.g._pred["B"]["A"]["t1"].ts, graph.g._pred["B"]["C"]["t2"].ts]}
    graph.add(xfer("t3", "D", "B", 10, 0.5))                     # late: sorted in, not appended
    assert graph._in_times["B"] == _edge_times(graph.g._pred["B"])
    graph.add(xfer("t4", "A", "E", 10, 200))                     # everything before minute 140 expires
    assert "B" not in graph._in_times and "B" not in graph.g
    assert not graph.has_senders("B", 0, 10**15, 10, CHANNELS, 0, False, 1)
