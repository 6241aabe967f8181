"""The kinds' prefilters and channel lists only skip work: with them the detector gives the same warnings and
counters as with every rule called on every event, under the default pack and under the AMLSim tuning (other
thresholds, no loan money required, busy-account caps), and it calls `detect` far less often."""

from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path

import pytest

from stream.detection import kinds as kinds_module
from stream.detection.detector import Detector
from stream.detection.rulebook import load_rules
from stream.model.events import parse_event
from stream.model.timefmt import parse_duration_ms
from stream.offline.replay import _open

FROZEN = Path(__file__).resolve().parents[1] / "fixtures" / "output_unchanged"
SHIPPED = Path(__file__).resolve().parents[2] / "rules"
CONFIGS = {        # rule pack, overrides, window
    "ten-rule pack": (FROZEN / "rules", (), "72h"),
    "amlsim tuning": (FROZEN / "rules", (FROZEN / "amlsim.override.yaml",), "30d"),
    "shipped pack": (SHIPPED, (), "72h"),       # with identity_ring and account_takeover
}


def replay(path: Path, rules: Path, overrides: tuple[Path, ...], window: str) -> tuple[list[bytes], dict]:
    window_ms = parse_duration_ms(window)
    detector = Detector(load_rules([rules], overrides, window_ms=window_ms), window_ms=window_ms)
    warnings = []
    with _open(path) as (lines, _, _):
        for line in lines:
            try:
                event = parse_event(line, watermark=detector.watermark)
            except Exception:  # noqa: BLE001 - the fixture's bad lines
                continue
            warnings += [warning.to_json() for warning in detector.process(event)]
    stats = detector.stats()
    return warnings, stats


def counting(name: str, detect, calls: Counter):
    def wrapped(rule, event, state):
        calls[name] += 1
        return detect(rule, event, state)
    return wrapped


@pytest.mark.parametrize("config", sorted(CONFIGS))
@pytest.mark.parametrize("ledger", ["sim-a", "sim-b"])
def test_prefilters_change_no_warning_and_skip_most_calls(monkeypatch, config, ledger):
    rules, overrides, window = CONFIGS[config]
    path = FROZEN / f"{ledger}.jsonl.gz"
    originals = dict(kinds_module.KINDS)
    filtered_calls, unfiltered_calls = Counter(), Counter()
    for name, kind in originals.items():
        monkeypatch.setitem(kinds_module.KINDS, name,
                            dataclasses.replace(kind, detect=counting(name, kind.detect, filtered_calls)))
    filtered = replay(path, rules, overrides, window)
    for name, kind in originals.items():
        monkeypatch.setitem(kinds_module.KINDS, name,
                            dataclasses.replace(kind, prefilter=None, channels=None,
                                                detect=counting(name, kind.detect, unfiltered_calls)))
    unfiltered = replay(path, rules, overrides, window)
    assert filtered[0] and filtered == unfiltered
    assert sum(filtered_calls.values()) < 0.3 * sum(unfiltered_calls.values()), (filtered_calls, unfiltered_calls)
    for name in ("identity_ring", "account_takeover"):    # run at every transfer but for their prefilters
        if unfiltered_calls[name]:
            assert filtered_calls[name] < 0.5 * unfiltered_calls[name], (name, filtered_calls, unfiltered_calls)
