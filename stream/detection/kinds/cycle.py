"""cycle: money returns to the account it left through a time-respecting chain of 2..max_len transfers, keeping
most of its amount, within a window.

Why it matters: round-tripping fakes turnover (to raise credit limits) or launders money back to its owner.
"""

from __future__ import annotations

from ._common import Param, channels_param, count, hours, min_amount_param, ratio, within_param

NAME = "cycle"
TRIGGERS = frozenset({"transfer"})

PARAMS = (
    Param("min_len", count(2, 8), 3,
          "Shortest cycle, in transfers. 2 (A -> B -> A) also catches friends paying each other back, hence 3.",
          looser="lower"),
    Param("max_len", count(2, 8), 4, "Longest cycle, in transfers (2 = A -> B -> A).", looser="higher"),
    within_param(hours(24), "From the first transfer of the cycle to the one that closes it."),
    Param("min_ratio", ratio, 0.8,
          "Every transfer on the cycle carries at least this share of the largest one (the money is kept).",
          looser="lower"),
    channels_param(frozenset({"p2p"}), "Transfer channels that count (default p2p)."),
    min_amount_param("Ignore cycles whose smallest transfer is below this (units)."),
)


def detect(rule, event, state):
    """Not implemented yet: finds nothing."""
    return ()
