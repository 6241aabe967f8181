"""scatter_gather's per-collector leg index gives the walk's answer: the same warnings with the index as with
every search walked, on dense random traffic with small caps (gathers whose leg walk the branch cap cuts,
collectors past the degree cap), late events, window expiry and entries rebuilt as they go stale."""

from __future__ import annotations

import random

import pytest
from detection_helpers import detector, rule, run, xfer

from stream.detection.kinds import scatter_gather
from stream.detection.state import SearchLimits
from stream.rules.model import Cooldown


def traffic(seed: int, events: int = 3000, accounts: int = 40) -> list:
    rng = random.Random(seed)
    names = [f"A{i}" for i in range(accounts)]
    out, minute = [], 0.0
    for n in range(events):
        minute += rng.expovariate(1.0)
        late = rng.random() < 0.05
        src, dst = rng.sample(names[:12] if rng.random() < 0.5 else names, 2)
        out.append(xfer(f"t{n}", src, dst, rng.choice([200, 900, 1500, 4000]),
                        minute - (rng.uniform(0, 4) if late else 0)))
    return out


def warnings(events: list, walked: bool, monkeypatch, answered: list) -> list[bytes]:
    index_of = scatter_gather._index

    def index(rule_, state):
        legs_index = index_of(rule_, state)
        if walked:
            return _Walked()
        if "legs" in vars(legs_index):       # counted already
            return legs_index
        legs = legs_index.legs

        def counting(*args):
            found = legs(*args)
            answered.append(found is not None)
            return found
        legs_index.legs = counting
        return legs_index
    monkeypatch.setattr(scatter_gather, "_index", index)
    det = detector(rule("scatter_gather", params={"within": "2h", "min_amount": 500, "min_intermediaries": 2},
                        cooldown=Cooldown(ms=0, subject="subject")),
                   window_ms=3 * 3_600_000, lateness_ms=10 * 60_000,
                   limits=SearchLimits(degree_cap=6, branch_cap=4))
    return [warning.to_json() for warning in run(det, events, refused=[])]


class _Walked:
    def legs(self, *args):
        return None


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_index_answers_as_the_walk_does(monkeypatch, seed):
    events = traffic(seed)
    answered: list[bool] = []
    indexed = warnings(events, False, monkeypatch, answered)
    walked = warnings(events, True, monkeypatch, [])
    assert len(indexed) > 20
    assert indexed == walked, _first_difference(indexed, walked)
    # both the index's answers and the degree cap's fallback were exercised
    assert answered.count(True) > 100 and answered.count(False) > 0, (answered.count(True), answered.count(False))


def test_gathers_cut_by_the_branch_cap_are_walked_again(monkeypatch):
    walked_again = []
    walk_legs = scatter_gather._walk_legs

    def counting(gather, since, *args):
        walked_again.append(gather.key)
        return walk_legs(gather, since, *args)
    monkeypatch.setattr(scatter_gather, "_walk_legs", counting)
    events = traffic(4)
    indexed = warnings(events, False, monkeypatch, [])
    assert walked_again
    walked = warnings(events, True, monkeypatch, [])
    assert indexed == walked, _first_difference(indexed, walked)


def _first_difference(a: list[bytes], b: list[bytes]) -> str:
    for n, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return f"warning {n}: {x[:300]!r} != {y[:300]!r}"
    return f"{len(a)} warnings against {len(b)}"
