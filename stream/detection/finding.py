"""What a typology reports before it becomes a warning.

Kind modules are pure functions returning `Finding`s; the Detector alone adds identity (warning id, rule
version), severity, cooldown and the clock. That keeps every kind free of bookkeeping.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:
    from ..model.events import Disbursement


@dataclass(frozen=True, slots=True)
class Finding:
    subject: str                      # the incident key: a loan id, an account, a canonical cycle...
    accounts: tuple[str, ...]         # primary subject first
    loan_ids: tuple[str, ...]
    txn_ids: tuple[str, ...]          # in event-time order
    amount: int                       # minor units of money the finding is about
    first_ts: int                     # epoch ms of the earliest event in the evidence
    score: float                      # 0..1, how strongly the pattern is present
    summary: str                      # one line an analyst reads first
    evidence: Mapping[str, Any] = field(default_factory=dict)
    loan_subject: str | None = None   # the loan a `cooldown: {subject: loan}` dedupes on, if any
    loan: "Disbursement | None" = None   # that loan's disbursement (what `where` and the currency read)
    features: Mapping[str, Any] = field(default_factory=dict)   # what a `where` reads as `finding.<name>`
