"""Warnings of a small ledger replayed through the shipped rule pack, shared by the tests that draw and show them:
the evidence they carry is what the kinds really write."""

from __future__ import annotations

import io
from pathlib import Path

from stream.model.warning import EarlyWarning
from stream.offline.replay import replay_file
from stream.detection.rulebook import load_rules

PACK = Path(__file__).resolve().parents[2] / "rules"
HOUR = 3_600_000

# A loan layered through two mules and withdrawn (rapid-cashout and layering-chain), and a round trip.
LEDGER = [
    '{"type":"disbursement","event_id":"d1","ts":"2026-03-02T10:00:00Z","loan_id":"L1","account":"U1","amount":"5000.00"}',
    '{"type":"transfer","event_id":"t1","ts":"2026-03-02T10:05:00Z","src":"U1","dst":"U2","amount":"4950.00","channel":"p2p"}',
    '{"type":"transfer","event_id":"t2","ts":"2026-03-02T10:10:00Z","src":"U2","dst":"U3","amount":"4900.00","channel":"p2p"}',
    '{"type":"transfer","event_id":"t3","ts":"2026-03-02T10:15:00Z","src":"U3","dst":"6222000011112222",'
    '"amount":"4850.00","channel":"withdrawal"}',
    '{"type":"disbursement","event_id":"d2","ts":"2026-03-02T12:00:00Z","loan_id":"L2","account":"U7","amount":"8000.00"}',
    '{"type":"transfer","event_id":"t4","ts":"2026-03-02T12:10:00Z","src":"U7","dst":"U8","amount":"7900.00","channel":"p2p"}',
    '{"type":"transfer","event_id":"t5","ts":"2026-03-02T12:40:00Z","src":"U8","dst":"U7","amount":"7800.00","channel":"p2p"}',
]


def replayed(tmp_path: Path) -> dict[str, EarlyWarning]:
    ledger = tmp_path / "ledger.jsonl"
    ledger.write_text("\n".join(LEDGER) + "\n")
    out = io.BytesIO()
    replay_file(ledger, load_rules(PACK), out, window_ms=72 * HOUR, lateness_ms=300_000, progress=False)
    warnings = [EarlyWarning.from_json(line) for line in out.getvalue().splitlines()]
    return {warning.rule_id: warning for warning in warnings}


def warning(kind: str, evidence: dict, **fields) -> EarlyWarning:
    """A warning of `kind` with this evidence; every other field a plain default unless given."""
    data = {"warning_id": "w-1", "rule_id": "r", "rule_version": "1", "kind": kind, "severity": "high",
            "score": 0.5, "subject": "S", "accounts": [], "loan_ids": [], "txn_ids": [], "amount": "100.00",
            "currency": "CNY", "first_ts": "2026-03-02T10:00:00Z", "event_ts": "2026-03-02T11:00:00Z",
            "detected_at": "2026-03-02T11:00:00Z", "summary": "s", "evidence": evidence}
    return EarlyWarning.from_dict({**data, **fields})
