"""The benchmark figures are computed from their samples as documented, and compared with their targets."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))    # bench/ is a top-level folder, not installed

from bench import latency, memory, scaling
from bench.offline import OfflineResult, Sample
from bench.report import at_least, at_most, render


def result(edges_per_chunk: int, cpu_per_chunk: list[float], *, rss_start: int = 1000) -> OfflineResult:
    samples, cpu = [Sample(0, 0.0, 0.0, 0, rss_start)], 0.0
    for index, seconds in enumerate(cpu_per_chunk, start=1):
        cpu += seconds
        samples.append(Sample(index * 100, cpu, cpu, index * edges_per_chunk, rss_start + index * 500))
    end = samples[-1]
    return OfflineResult(ledger="l", events=end.lines, warnings=0, edges_at_end=end.edges, cpu_s=cpu, wall_s=cpu,
                         rss_start=rss_start, rss_end=end.rss, peak_rss=end.rss, gc_s=0.0, samples=samples)


def test_cost_near_a_size_uses_only_the_chunks_ending_within_its_last_tenth():
    run = result(10, [0.001] * 9 + [0.004])            # 10 chunks of 100 lines, ending at 10, 20 ... 100 edges
    assert run.cost_us_near(100) == pytest.approx(25.0)          # chunks ending at 90 and 100: 0.005 s / 200 lines
    assert run.cost_us_near(50) == pytest.approx(10.0)
    with pytest.raises(ValueError, match="about 1000 edges"):
        run.cost_us_near(1000)


def test_bytes_per_edge_is_rss_growth_over_edges_held():
    run = result(10, [0.001] * 4)
    assert run.bytes_per_edge == pytest.approx(2000 / 40)
    assert memory.figures(run)[0].met is True


def test_scaling_ratio_compares_the_largest_with_the_smallest_window():
    small, large = result(10, [0.001] * 10), result(1000, [0.001] * 8 + [0.002, 0.002])
    rows = scaling.figures({100: small, 10_000: large})
    ratio = rows[-1]
    assert ratio.value == pytest.approx(2.0) and ratio.met is False and ratio.target == "<= 1.30"
    assert scaling.figures({100: small, 10_000: small})[-1].met is True


def test_targets_and_rendering():
    assert at_least("rate", 49_999, "events/s", 50_000).met is False
    assert at_most("p99", 1.0, "s", 1.0).met is True
    lines: list[str] = []
    render([at_least("rate", 60_000, "events/s", 50_000, "note")], lines.append)
    assert "60,000 events/s" in lines[2] and ">= 50,000" in lines[2] and "MET" in lines[2] and "note" in lines[2]


def test_latency_takes_the_last_produced_evidence_event_as_the_completing_one():
    sent = {"d1": 1.0, "t1": 2.0, "t2": 5.0}
    seen = {"w1": (5.5, ["d1", "t1", "t2"]), "w2": (3.0, ["t1", "x-not-produced"]), "w3": (9.0, ["other"])}
    latencies, unmatched = latency._latencies(sent, seen)
    assert latencies == [pytest.approx(0.5), pytest.approx(1.0)] and unmatched == 1


def test_the_peer_comparison_is_the_ratio_of_per_event_rates_and_says_when_the_peer_is_missing():
    from bench import peer

    ours = {"events": 1000, "cpu_s": 0.1, "warnings": 3}                  # 10,000 events/s
    figures = peer.figures({"rounds": [{"fundflow": ours, "snapml": {"events": 1000, "cpu_s": 0.2}}]})  # 5,000/s
    assert figures[-1].value == pytest.approx(2.0) and figures[-1].met is True
    assert peer.figures({"rounds": [{"fundflow": ours, "snapml": {"events": 1000, "cpu_s": 0.19}}]})[-1].met is False
    shown = peer.figures({"rounds": [{"fundflow": ours, "snapml": {"missing": "snapml is not installed"}}]})
    assert shown[0].value == pytest.approx(10_000) and shown[-1].value is None
    assert "not installed" in shown[-1].note


def test_the_peer_ratio_is_the_median_of_the_rounds_ratios():
    from bench import peer

    def round_of(ours_cpu_s: float, theirs_cpu_s: float) -> dict:
        return {"fundflow": {"events": 1000, "cpu_s": ours_cpu_s, "warnings": 3},
                "snapml": {"events": 1000, "cpu_s": theirs_cpu_s}}
    # Ratios 1.5, 2.5 and 2.1: the median is 2.1, not the mean (2.03) nor the ratio of the medians.
    figures = peer.figures({"rounds": [round_of(0.1, 0.15), round_of(0.1, 0.25), round_of(0.1, 0.21)]})
    assert figures[-1].value == pytest.approx(2.1) and figures[-1].met is True
    assert "1.50, 2.50, 2.10" in figures[-1].note
    assert figures[0].value == pytest.approx(10_000) and figures[1].value == pytest.approx(1000 / 0.21)
    failed = peer.figures({"rounds": [round_of(0.1, 0.15), {"fundflow": round_of(0.1, 0.1)["fundflow"],
                                                              "snapml": {"missing": "the peer failed"}}]})
    assert failed[-1].value is None and "failed" in failed[-1].note


def test_latency_on_a_disk_backed_server_is_reported_beside_the_target_not_against_it():
    stored = [0.1] * 98 + [0.2, 0.3]
    memory_run = latency.RateResult(2_000, 1_999.0, 40_000, stored, stored, 0, "librdkafka", on_disk=False)
    disk_run = latency.RateResult(2_000, 1_999.0, 40_000, [s * 4 for s in stored], stored, 0, "librdkafka",
                                  on_disk=True)
    rows = {row.name: row for row in latency.figures([memory_run, disk_run])}
    targeted = rows["latency to ClickHouse p99 @ 2,000/s"]
    assert targeted.met is False and targeted.value == pytest.approx(0.3) and "0.25" in targeted.target
    on_disk = rows["latency to ClickHouse p99 @ 2,000/s, ClickHouse on disk"]
    assert on_disk.met is None and on_disk.value == pytest.approx(1.2) and not on_disk.target
    assert "librdkafka" in rows["latency to ClickHouse p50 @ 2,000/s"].note


def test_the_live_ratio_is_the_median_round_and_its_figures_come_from_that_round():
    from bench import live

    def round_of(worker_rate: float, detecting_rate: float) -> "live.LiveResult":
        return live.LiveResult(events=150_000, worker_rate=worker_rate, bare_rate=150_000.0,
                               detecting_rate=detecting_rate, warnings=80, offline_warnings=80)
    # Ratios 0.5, 0.8 and 0.72: the median round is the third, not the mean (0.673) nor a ratio of medians.
    figures = live.figures([round_of(10_000, 20_000), round_of(20_000, 25_000), round_of(18_000, 25_000)])
    ratio = figures[2]
    assert ratio.value == pytest.approx(0.72) and ratio.met is True
    assert "0.50, 0.80, 0.72" in ratio.note
    assert figures[0].value == pytest.approx(18_000) and figures[1].value == pytest.approx(25_000)
    single = live.figures([round_of(10_000, 20_000)])
    assert single[2].value == pytest.approx(0.5) and single[2].met is False and single[2].note == "same run"
    even = live.figures([round_of(10_000, 20_000), round_of(20_000, 25_000)])     # the lower of two middles
    assert even[2].value == pytest.approx(0.5)


def test_the_live_warning_count_is_read_once_it_stops_moving():
    from bench import live

    counts = iter([75, 78, 80, 80, 81])
    naps = []
    assert live.settled(lambda: next(counts), sleep=naps.append) == 80
    assert naps == [0.5, 0.5, 0.5]
    rising = iter(range(100))
    assert live.settled(lambda: next(rising), timeout_s=2.0, sleep=lambda _: None) == 4   # gives up at the timeout
