"""`fundflow replay`: the production detector over a file; bad lines skipped and reported, output deterministic."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import orjson

from stream.cli import main
from stream.offline.replay import replay_file
from stream.detection.rulebook import load_rules
from stream.model.warning import EarlyWarning

PACK = Path(__file__).resolve().parents[2] / "rules"
HOUR = 3_600_000

LINES = [
    '{"type":"disbursement","event_id":"d1","ts":"2026-03-02T10:00:00Z","loan_id":"L1","account":"U1","amount":"5000.00"}',
    '{"type":"transfer","event_id":"t0","ts":"2026-03-02T10:01:00Z","src":"U1","dst":"grocer","amount":"20.00",'
    '"channel":"merchant","merchant_category":"5411"}',
    'this is not json',
    '',
    '{"type":"transfer","event_id":"t1","ts":"2026-03-02T10:12:00Z","src":"U1","dst":"card:1","amount":"4800.00",'
    '"channel":"withdrawal"}',
    '{"type":"transfer","event_id":"t2","ts":"2026-03-02T10:13:00Z","src":"U1","dst":"U2","amount":"-3"}',
    '{"type":"transfer","event_id":"t3","ts":"2026-03-09T10:13:00Z","src":"U1","dst":"U2","amount":"3"}',
    '{"type":"disbursement","event_id":"d2","ts":"2026-03-02T11:00:00Z","loan_id":"L2","account":"U3",'
    '"amount":"2000.00","device_id":"dev-x"}',
    '{"type":"disbursement","event_id":"d3","ts":"2026-03-02T11:10:00Z","loan_id":"L3","account":"U4",'
    '"amount":"2000.00","device_id":"dev-x"}',
    '{"type":"disbursement","event_id":"d4","ts":"2026-03-02T11:20:00Z","loan_id":"L4","account":"U5",'
    '"amount":"2000.00","device_id":"dev-x"}',
]


def ledger(tmp_path: Path, name: str = "events.jsonl") -> Path:
    path = tmp_path / name
    data = ("\n".join(LINES) + "\n").encode()
    path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    return path


def run(path: Path):
    out = io.BytesIO()
    report = replay_file(path, load_rules(PACK), out, window_ms=72 * HOUR, lateness_ms=5 * 60_000, progress=False)
    return report, [EarlyWarning.from_json(line) for line in out.getvalue().splitlines()], out.getvalue()


def test_replay_warns_and_skips_bad_lines(tmp_path):
    report, warnings, _ = run(ledger(tmp_path))
    assert sorted((w.rule_id, w.subject) for w in warnings) == [("device-burst", "device:dev-x"),
                                                               ("rapid-cashout", "L1")]
    cashout = next(w for w in warnings if w.rule_id == "rapid-cashout")
    assert cashout.detected_at == cashout.event_ts          # event time: deterministic
    assert (report.lines, report.events, report.blank, report.bad) == (10, 6, 1, 3)
    assert [number for number, _ in report.bad_samples] == [3, 6, 7]
    assert report.bad_by_reason == {"malformed_json": 1, "bad_amount": 1, "absurd_timestamp": 1}
    assert report.by_rule == {"rapid-cashout": 1, "device-burst": 1}
    text = report.render()
    assert text.startswith("replayed 10 lines: 6 events, 3 bad lines skipped, 2 warnings")
    assert "  line 3: malformed_json" in text and "  line 7: absurd_timestamp" in text


def test_replay_is_byte_for_byte_deterministic_and_reads_gzip(tmp_path):
    _, _, first = run(ledger(tmp_path))
    _, _, again = run(ledger(tmp_path))
    _, _, gzipped = run(ledger(tmp_path, "events.jsonl.gz"))
    assert first and first == again == gzipped


def test_bad_line_samples_are_capped(tmp_path):
    path = tmp_path / "junk.jsonl"
    path.write_text("\n".join(["{broken"] * 50) + "\n" + LINES[0] + "\n")
    out = io.BytesIO()
    report = replay_file(path, load_rules(PACK), out, window_ms=72 * HOUR, lateness_ms=5 * 60_000,
                         progress=False, max_bad_shown=5)
    assert report.bad == 50 and len(report.bad_samples) == 5 and report.events == 1
    assert "bad lines (first 5):" in report.render()


def test_cli_replay_writes_json_lines_and_a_summary(tmp_path, capsys):
    out_file = tmp_path / "warnings.jsonl"
    code = main(["replay", str(ledger(tmp_path)), "--rules", str(PACK), "--out", str(out_file), "--no-progress"])
    assert code == 0
    rows = [orjson.loads(line) for line in out_file.read_bytes().splitlines()]
    assert sorted(row["rule_id"] for row in rows) == ["device-burst", "rapid-cashout"]
    assert all(row["warning_id"].startswith("w-") for row in rows)
    err = capsys.readouterr().err
    assert "replayed 10 lines: 6 events, 3 bad lines skipped, 2 warnings" in err
    assert "  rapid-cashout  1" in err

    assert main(["replay", str(ledger(tmp_path)), "--rules", str(PACK), "--no-progress", "--window", "1h"]) == 1
    assert "longer than the detector window 1h" in capsys.readouterr().err
    assert main(["replay", str(tmp_path / "missing.jsonl"), "--rules", str(PACK)]) == 1


def test_cli_rules_check_on_the_shipped_pack(capsys):
    assert main(["rules", "check", str(PACK)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("OK: ")
    assert "rapid_cashout" in out and "device_burst" in out


def test_replay_can_trace_money_of_unknown_origin(tmp_path):
    """A ledger with no disbursements: only inflow tracing gives the tracer lots to follow."""
    lines = [
        '{"type":"transfer","event_id":"in","ts":"2026-03-02T10:00:00Z","src":"EXT","dst":"M1","amount":"9000.00"}',
        '{"type":"transfer","event_id":"h1","ts":"2026-03-02T10:05:00Z","src":"M1","dst":"M2","amount":"8900.00"}',
        '{"type":"transfer","event_id":"h2","ts":"2026-03-02T10:10:00Z","src":"M2","dst":"M3","amount":"8800.00"}',
        '{"type":"transfer","event_id":"h3","ts":"2026-03-02T10:15:00Z","src":"M3","dst":"M4","amount":"8700.00"}',
    ]
    path = tmp_path / "no-loans.jsonl"
    path.write_text("\n".join(lines) + "\n")
    from stream.detection.tracer import TracerOptions
    from stream.offline.replay import replay_detector

    def lots_after(tracer):
        detector = replay_detector(load_rules(PACK), window_ms=72 * HOUR, lateness_ms=5 * 60_000, tracer=tracer)
        for line in lines:
            from stream.model.events import parse_event
            detector.process(parse_event(line))
        return detector.stats()["lots"]

    assert lots_after(None) == 0
    assert lots_after(TracerOptions(trace_inflows_above=500_000)) > 0
    code = main(["replay", str(path), "--no-progress", "--trace-inflows-above", "5000", "--out",
                 str(tmp_path / "w.jsonl")])
    assert code == 0
    assert main(["replay", str(path), "--no-progress", "--trace-inflows-above", "-1"]) == 1


def test_replay_exits_0_on_deeply_nested_and_oversized_lines(tmp_path, capsys):
    """Regression: 1000 levels of nesting in any field raised RecursionError and `fundflow replay` exited 1."""
    nested = "[" * 1000 + "]" * 1000
    hostile = [LINES[0][:-1] + f',"{name}":{nested}}}' for name in ("event_id", "ts", "account", "amount", "type",
                                                                      "currency", "loan_id")]
    hostile.append(LINES[0][:-1] + ',"loan_id":"' + "L" * 400_000 + '"}')
    path = tmp_path / "hostile.jsonl"
    path.write_text("\n".join(LINES + hostile) + "\n")
    assert main(["replay", str(path), "--rules", str(PACK), "--out", str(tmp_path / "w.jsonl"), "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "too_deep 7" in err and "message_too_large 1" in err and "2 warnings" in err


def test_warnings_from_the_outbox_are_decoded_as_untrusted_input(tmp_path):
    """Regression: a record written straight into the warnings topic reached `repr()` and deep recursion in the
    sink agents. Every problem is a ValueError with a short message."""
    good = orjson.loads(run(ledger(tmp_path))[2].splitlines()[0])
    nested = "[" * 1000 + "]" * 1000
    cases = [b"\xff\xfe", b"[]", orjson.dumps({**good, "accounts": "U1"}), orjson.dumps({**good, "score": "x"}),
             orjson.dumps({k: v for k, v in good.items() if k != "rule_id"}), orjson.dumps({**good, "warning_id": ""}),
             orjson.dumps({**good, "event_ts": "1969-12-31T23:59:59Z"}), orjson.dumps({**good, "txn_ids": [1, 2]}),
             orjson.dumps(good)[:-1] + f',"evidence":{{"a":{nested}}}}}'.encode(),
             orjson.dumps({**good, "summary": "s" * 2_000_000})]
    for raw in cases:
        try:
            EarlyWarning.from_json(raw)
        except ValueError as exc:
            assert len(str(exc)) < 300
        else:
            raise AssertionError(f"accepted {raw[:80]!r}")
    assert EarlyWarning.from_json(orjson.dumps(good)).to_dict() == good


def test_replay_of_a_truncated_gzip_reports_what_it_read_and_exits_1_in_one_line(tmp_path, capsys):
    whole = gzip.compress(("\n".join(LINES) + "\n").encode() * 50)
    path = tmp_path / "trunc.jsonl.gz"
    path.write_bytes(whole[: len(whole) * 2 // 3])
    assert main(["replay", str(path), "--rules", str(PACK), "--out", str(tmp_path / "w.jsonl"), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and "replayed " in err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"fundflow replay: {path}: cannot read past line ") and "warnings of the lines" in last


def test_replay_refuses_a_directory_and_an_unwritable_out_in_one_line(tmp_path, capsys):
    assert main(["replay", str(tmp_path), "--rules", str(PACK)]) == 1
    assert "is a directory" in capsys.readouterr().err
    for out in (tmp_path / "missing" / "w.jsonl", tmp_path):
        assert main(["replay", str(ledger(tmp_path)), "--rules", str(PACK), "--out", str(out), "--no-progress"]) == 1
        err = capsys.readouterr().err
        assert "Traceback" not in err and f"--out {out}: cannot write there" in err


def test_the_replay_summary_is_a_short_text_and_json_for_machines(tmp_path, capsys):
    """Regression: the summary ended with a raw Python dict of detector internals."""
    path = ledger(tmp_path)
    out = str(tmp_path / "w.jsonl")
    assert main(["replay", str(path), "--rules", str(PACK), "--out", out, "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "{'" not in err and "window at the end: " in err
    assert "rules that raised nothing: " in err and "layering-chain" in err.split("rules that raised nothing: ")[1]
    assert main(["replay", str(path), "--rules", str(PACK), "--out", out, "--no-progress", "--json"]) == 0
    summary = orjson.loads(capsys.readouterr().err)
    assert summary["events"] == 6 and summary["warnings"] == 2 and summary["bad_by_reason"]
    assert summary["warnings_by_rule"] == {"device-burst": 1, "rapid-cashout": 1}
    assert "layering-chain" in summary["silent_rules"] and summary["detector"]["events"] >= 6
