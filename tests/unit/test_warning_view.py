"""The full view of one warning: evidence values read with their units, whatever a kind puts in them."""

from __future__ import annotations

from stream.offline.warning_view import render_warning
from warning_samples import replayed, warning


def test_evidence_amounts_carry_the_currency_and_durations_read_as_time(tmp_path):
    lines = render_warning(replayed(tmp_path)["round-trip-pair"]).splitlines()
    assert "  amounts       7900.00 CNY, 7800.00 CNY" in lines
    assert "  elapsed_s     1800 (30 min)" in lines
    assert "notify        (none)" in lines


def test_unexpected_evidence_is_shown_as_json_and_long_lists_wrap_under_their_label():
    shown = render_warning(warning("fan_out", {"truncated": {"txn_ids": 400}, "odd": {"a": [1, {"b": None}]},
                                               "flag": True},
                                   txn_ids=[f"t-{n:05d}" for n in range(30)]))
    lines = shown.splitlines()
    assert "  truncated     txn_ids 400" in lines
    assert '  odd           {"a":[1,{"b":null}]}' in lines
    assert "  flag          true" in lines
    wrapped = [line for line in lines if "t-000" in line or line.startswith(" " * 14 + "t-")]
    assert len(wrapped) > 1 and all(len(line) <= 110 for line in wrapped)
    assert all(line.startswith(" " * 14) for line in wrapped[1:])
