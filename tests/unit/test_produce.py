"""fundflow produce without a broker: line reading, refusal report, pacing."""

from __future__ import annotations

import gzip

import pytest

from stream.offline.produce import ProduceError, ProduceReport, Throttle, iter_lines, produce_file
from stream.settings import load_settings


def test_iter_lines_reads_plain_and_gzip_and_skips_blank_lines(tmp_path):
    plain = tmp_path / "a.jsonl"
    plain.write_bytes(b'{"a":1}\n\n  \n{"b":2}\r\n{"c":3}')
    packed = tmp_path / "a.jsonl.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    expected = [(1, b'{"a":1}'), (4, b'{"b":2}'), (5, b'{"c":3}')]
    assert list(iter_lines(plain)) == expected
    assert list(iter_lines(packed)) == expected


def test_corrupt_gzip_is_a_produce_error(tmp_path):
    path = tmp_path / "bad.jsonl.gz"
    path.write_bytes(b"not gzip at all")
    with pytest.raises(ProduceError, match="bad.jsonl.gz: cannot read"):
        list(iter_lines(path))


def test_missing_file_is_a_produce_error(tmp_path):
    with pytest.raises(ProduceError, match="no such file"):
        produce_file(tmp_path / "nope.jsonl", load_settings(None, env={}), progress=False)


def test_report_groups_refusals_by_reason_with_first_lines():
    report = ProduceReport()
    report.sent["fundflow.transfers"] = 3
    for line in (2, 4, 6, 8, 10, 12, 14):
        report.refuse("malformed_json", line, f"malformed_json: line {line}")
    report.refuse("self_transfer", 9, "self_transfer: src and dst are the same account 'U1'")
    text = report.render()
    assert text.splitlines() == [
        "sent 3 to fundflow.transfers",
        "refused 8 lines",
        "  malformed_json: 7 (lines 2, 4, 6, 8, 10, ...) e.g. malformed_json: line 2",
        "  self_transfer: 1 (lines 9) e.g. self_transfer: src and dst are the same account 'U1'",
    ]


def test_throttle_paces_to_the_rate_with_an_injected_clock():
    now = [100.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    throttle = Throttle(4, clock=lambda: now[0], sleep=sleep)
    for _ in range(5):
        throttle.wait()
    assert slept == [0.25, 0.25, 0.25, 0.25]
    assert now[0] == pytest.approx(101.0)


def test_no_rate_means_no_waiting():
    throttle = Throttle(None, clock=lambda: 0.0, sleep=lambda s: pytest.fail("must not sleep"))
    throttle.wait()
    throttle.wait()
