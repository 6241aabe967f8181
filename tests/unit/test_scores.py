"""Scores mean the same across kinds: 0.5 when every piece of evidence just meets its rule's threshold, 1.0 when
each is at its strongest, so a queue sorted by score puts the clearest cases first whatever their typology."""

from __future__ import annotations

from detection_helpers import detector, disb, rule, run, xfer
from stream.detection.kinds._common import count_strength, evidence_score, quickness, strength


def test_evidence_score_runs_from_half_at_the_threshold_to_one_at_the_strongest():
    assert evidence_score(strength(0.8, 0.8, 1.0)) == 0.5
    assert evidence_score(strength(1.0, 0.8, 1.0), quickness(0, 3_600_000)) == 1.0
    assert evidence_score(count_strength(5, 5), count_strength(20, 5)) == 0.75
    assert strength(2.0, 0.8, 1.0) == 1.0 and strength(0.1, 0.8, 1.0) == 0.0 and quickness(7200, 3600) == 0.0


def cashout(share: float, minutes: float):
    return [disb("d1", "U1", 10000, 0, loan="L1"),
            xfer("t1", "U1", "card:1", 10000 * share, minutes, channel="withdrawal")]


def fan_in(senders: int, gap: float):
    events = []
    for i in range(senders):
        events += [disb(f"d{i}", f"S{i}", 3000, i * gap, loan=f"L{i}"), xfer(f"t{i}", f"S{i}", "HUB", 2900, i * gap + 1)]
    return events


def test_stronger_evidence_scores_higher_within_and_across_kinds():
    rapid = rule("rapid_cashout", params={"within": "1h", "min_ratio": 0.8})
    fan = rule("fan_in", params={"min_sources": 5, "within": "6h", "min_total": 0})
    (clear_cashout,) = run(detector(rapid), cashout(1.0, 5))
    (borderline_cashout,) = run(detector(rapid), cashout(0.81, 55))
    clear_fan = run(detector(fan), fan_in(10, 2))[-1]
    borderline_fan = run(detector(fan), fan_in(5, 70))[-1]
    assert 0.5 <= borderline_cashout.score < 0.6 and clear_cashout.score > 0.95
    assert 0.5 <= borderline_fan.score < clear_fan.score
    queue = sorted([borderline_fan, clear_cashout, borderline_cashout, clear_fan], key=lambda w: -w.score)
    assert {w.warning_id for w in queue[:2]} == {clear_cashout.warning_id, clear_fan.warning_id}
