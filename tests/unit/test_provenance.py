"""Provenance lists are cut where nothing further is inside the window, and no walk that stays inside the window
sees a difference: not over the account's own list, not over a sender's list an inflow carried as `before`."""

from __future__ import annotations

import random

from stream.detection.graph import EdgeData
from stream.detection.provenance import Provenance, walk

WINDOW = 1000


def entries(head):
    out = []
    while head is not None:
        out.append((head.src, head.key, head.attrs.ts))
        head = head.rest
    return out


def walked(head, since, until, cap):
    return [(inflow.src, inflow.key) for inflow in walk(head, since, until, cap)]


def test_cutting_old_entries_changes_no_walk_inside_the_window_and_shortens_the_lists():
    rng = random.Random(5)
    provenance = Provenance(WINDOW)
    carried = []                          # `before` heads captured as transfers were sent
    clock = 0
    for n in range(3000):
        clock += rng.randint(0, 3)
        ts = clock - (rng.randint(0, 400) if rng.random() < 0.1 else 0)      # some late events
        account, sender = f"A{rng.randint(0, 9)}", f"S{rng.randint(0, 30)}"
        before = provenance.inflows(sender)
        provenance.add(account, sender, f"t{n}", EdgeData(ts, 0, "p2p"), before, 1)
        if n % 50 == 0:
            carried.append(provenance.inflows(account))
        if n % 97 == 0:
            cutoff = clock - WINDOW
            heads = {a: provenance.inflows(a) for a in (f"A{i}" for i in range(10))}
            probes = [(since, until, cap) for since in (cutoff, cutoff + 100, cutoff + 700)
                      for until in (clock, clock - 50) for cap in (3, 50)]
            seen_before = {(a, p): walked(h, *p) for a, h in heads.items() for p in probes}
            seen_carried = [[walked(h, *p) for p in probes] for h in carried]
            length_before = sum(len(entries(h)) for h in heads.values())
            provenance.expire(cutoff)
            after = {a: provenance.inflows(a) for a in heads}
            assert {(a, p): walked(after[a], *p) for a in heads for p in probes} == seen_before
            assert [[walked(h, *p) for p in probes] for h in carried] == seen_carried
            assert sum(len(entries(h)) for h in after.values()) <= length_before
    # nothing is left past the point where everything further is older than the cutoff
    cutoff = clock - WINDOW // 2
    provenance._trims = [(cutoff - 1, f"A{i}") for i in range(10)]          # every list due now
    provenance.expire(cutoff)
    for i in range(10):
        head = provenance.inflows(f"A{i}")
        while head is not None:
            assert head.newest >= cutoff
            head = head.rest
