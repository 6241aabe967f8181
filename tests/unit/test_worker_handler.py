"""The worker's per-message decision (MessageHandler) and the dead-letter record, without Kafka."""

from __future__ import annotations

import json

from stream.model.warning import EarlyWarning, make_warning_id
from stream.worker.deadletter import DeadLetter, Origin, headers_dict, normalize_headers
from stream.worker.handler import MessageHandler

TS_MS = 1_772_446_500_000
ORIGIN = Origin("fundflow.transfers", 2, 41)


class ScriptedDetector:
    """Records events; warns on ids starting with 'warn', fails on ids starting with 'boom'."""

    def __init__(self) -> None:
        self.watermark: int | None = None
        self.seen: list[str] = []

    def process(self, event, detected_at=None):
        if event.event_id.startswith("boom"):
            raise KeyError("lost lot")
        self.seen.append(event.event_id)
        self.watermark = max(self.watermark or event.ts, event.ts)
        if not event.event_id.startswith("warn"):
            return []
        return [EarlyWarning(warning_id=make_warning_id("r", "1", event.event_id), rule_id="r", rule_version="1",
                             kind="fan_out", severity="high", score=1.0, subject=event.src, accounts=event.accounts,
                             loan_ids=(), txn_ids=(event.event_id,), amount=event.amount, currency="CNY",
                             first_ts=event.ts, event_ts=event.ts, detected_at=event.ts, summary="s")]


def transfer(event_id: str, ts: int = TS_MS, **changes) -> bytes:
    return json.dumps({"type": "transfer", "event_id": event_id, "ts": ts, "src": "A", "dst": "B",
                       "amount": "1.00", **changes}).encode()


def test_good_event_reaches_detector_and_its_warnings_come_back():
    detector = ScriptedDetector()
    handler = MessageHandler(detector)
    quiet = handler.handle(transfer("t-1"), key=b"A", origin=ORIGIN)
    loud = handler.handle(transfer("warn-2"), key=b"A", origin=ORIGIN)
    assert quiet.dead_letter is None and quiet.warnings == () and quiet.event.event_id == "t-1"
    assert [w.txn_ids for w in loud.warnings] == [("warn-2",)]
    assert detector.seen == ["t-1", "warn-2"]
    assert handler.accepted == {"fundflow.transfers": 2} and handler.warnings_raised == 1


def test_bad_event_becomes_a_dead_letter_with_original_bytes_and_key():
    handler = MessageHandler(ScriptedDetector())
    raw = transfer("t-1", amount="12.345")
    outcome = handler.handle(raw, key=b"A", origin=ORIGIN, headers=(("trace", b"abc"),))
    letter = outcome.dead_letter
    assert outcome.event is None and outcome.warnings == ()
    assert (letter.key, letter.value, letter.reason) == (b"A", raw, "bad_amount")
    headers = headers_dict(letter.headers())
    assert headers["fundflow.reason"] == "bad_amount"
    assert "more than 2 decimals" in headers["fundflow.error"] and "t-1" in headers["fundflow.error"]
    assert (headers["fundflow.topic"], headers["fundflow.partition"], headers["fundflow.offset"]) == (
        "fundflow.transfers", "2", "41")
    assert headers["trace"] == "abc"     # the producer's own headers travel with the message
    assert handler.refused == {"bad_amount": 1}


def test_tombstone_and_watermark_checks():
    detector = ScriptedDetector()
    handler = MessageHandler(detector)
    assert handler.handle(None, key=None, origin=ORIGIN).dead_letter.reason == "not_an_object"
    handler.handle(transfer("t-1"), key=b"A", origin=ORIGIN)
    far_future = handler.handle(transfer("t-2", ts=TS_MS + 2 * 86_400_000), key=b"A", origin=ORIGIN)
    assert far_future.dead_letter.reason == "absurd_timestamp"   # judged against the detector's watermark


def test_detector_failure_dead_letters_that_event_and_the_next_one_goes_through():
    detector = ScriptedDetector()
    handler = MessageHandler(detector)
    failed = handler.handle(transfer("boom-1"), key=b"A", origin=ORIGIN)
    assert failed.dead_letter.reason == "detector_error"
    assert "KeyError" in failed.dead_letter.error and "boom-1" in failed.dead_letter.error
    assert handler.handle(transfer("t-2"), key=b"A", origin=ORIGIN).dead_letter is None
    assert detector.seen == ["t-2"]


def test_redead_lettering_replaces_the_old_diagnosis():
    old = DeadLetter(b"k", b"v", "bad_amount", "old", Origin("in", 0, 1)).headers()
    again = DeadLetter(b"k", b"v", "malformed_json", "new", Origin("fixed", 1, 7),
                       original_headers=normalize_headers(old)).headers()
    assert [k for k, _ in again].count("fundflow.reason") == 1
    assert headers_dict(again)["fundflow.reason"] == "malformed_json"


def test_error_header_is_bounded():
    letter = DeadLetter(None, b"x", "bad_amount", "e" * 10_000, ORIGIN)
    assert len(headers_dict(letter.headers())["fundflow.error"]) == 2000


def test_headers_normalized_from_dict_or_pairs():
    assert normalize_headers({"a": b"1"}) == (("a", b"1"),)
    assert normalize_headers([("a", None)]) == (("a", b""),)
    assert normalize_headers(None) == ()
