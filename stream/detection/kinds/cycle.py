"""cycle: money returns to the account it left through a time-respecting chain of 2..max_len transfers, keeping
most of its amount, within a window.

Why it matters: round-tripping fakes turnover (to raise credit limits) or launders money back to its owner.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...events import Transfer
from ...money import format_minor
from ..finding import Finding
from ._common import (Param, boolean, channels_param, count, format_elapsed, hours, loans_of,
                      max_counterparties_param, min_amount_param, ordered_unique, percent, ratio, too_busy,
                      within_param)

if TYPE_CHECKING:
    from ...events import Event
    from ...rules.model import Rule
    from ..state import DetectionState

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
    max_counterparties_param("Leave out cycles through an account with more counterparties than this (distinct "
                             "senders plus receivers) in the whole graph window: busy accounts close rings by "
                             "chance over long windows. 0: no limit."),
    Param("in_time_order", boolean, True,
          "Each transfer of the cycle comes after the one before it, so the same money can have gone round. "
          "false: a ring of transfers within the window counts in any order (ledgers booked in daily batches, "
          "or rings whose legs are paid from each account's own balance).", versioned_at_default=False),
)


MAX_CYCLES = 16     # cycles collected per event before the best is chosen


def canonical(accounts: tuple[str, ...]) -> str:
    """The same cycle read from any starting account gets the same name: rotate to the smallest account."""
    start = accounts.index(min(accounts))
    return ">".join(accounts[start:] + accounts[:start])


def detect(rule: "Rule", event: "Event", state: "DetectionState") -> list[Finding]:
    """On a transfer u -> v: is there an earlier time-respecting chain v -> ... -> u, so that v got its money
    back? Searched backwards from u, at most `max_len` - 1 transfers deep, `branch_cap` neighbours per node and
    `path_budget` edges in all."""
    if not isinstance(event, Transfer) or event.channel != "p2p":
        return []
    params = rule.params
    channels, min_amount, min_ratio = params["channels"], params["min_amount"], params["min_ratio"]
    if event.channel not in channels or event.amount < min_amount:
        return []
    graph, limits = state.graph, state.limits
    home, closer = event.dst, event.src
    if not graph.sender_count(closer) or graph.receiver_count(home) < 1:
        return []       # nothing ever reached the payer or left the payee: no chain to close
    busy_cap = params["max_counterparties"]
    if too_busy(graph, home, busy_cap) or too_busy(graph, closer, busy_cap):
        return []
    since = event.ts - params["within"]
    min_len, max_len = params["min_len"], params["max_len"]
    closing = (closer, home, event.event_id, {"ts": event.ts, "amount": event.amount})
    found: list[list[tuple[str, str, str, dict]]] = []
    budget = [limits.path_budget]
    in_time_order = params["in_time_order"]

    def search(node: str, until: int, chain: list, visited: set, low: int, high: int) -> None:
        # chain: edges found so far, newest first (closing edge first)
        for src, key, attrs in graph.in_edges(node, since, until, limits.branch_cap):
            budget[0] -= 1
            if budget[0] < 0 or len(found) >= MAX_CYCLES:
                return
            if key == event.event_id or attrs["channel"] not in channels:
                continue
            amount = attrs["amount"]
            lo, hi = min(low, amount), max(high, amount)
            if lo < min_amount or lo < min_ratio * hi:
                continue
            edge = (src, node, key, attrs)
            if src == home:
                if len(chain) + 1 >= min_len:
                    found.append([edge, *chain])
                continue
            if src in visited or len(chain) + 2 > max_len or too_busy(graph, src, busy_cap):
                continue
            visited.add(src)
            search(src, attrs["ts"] if in_time_order else until, [edge, *chain], visited, lo, hi)
            visited.discard(src)

    search(closer, event.ts, [closing], {home, closer}, event.amount, event.amount)
    if not found:
        return []
    cycle = min(found, key=lambda edges: (len(edges), edges[0][3]["ts"], tuple(e[2] for e in edges)))
    accounts = tuple(src for src, _, _, _ in cycle)
    first_ts = min(attrs["ts"] for _, _, _, attrs in cycle)     # the first leg, when they are in time order
    elapsed = event.ts - first_ts
    amounts = [attrs["amount"] for _, _, _, attrs in cycle]
    kept = event.amount / amounts[0]
    allocation = state.allocation
    loan_ids = tuple(sorted(set(loans_of(attrs for _, _, _, attrs in cycle[:-1]))
                            | set(allocation.loan_ids if allocation is not None else ())))
    return [Finding(
        subject=canonical(accounts), accounts=accounts, loan_ids=loan_ids,
        txn_ids=ordered_unique(key for _, _, key, _ in cycle), amount=min(amounts), first_ts=first_ts,
        score=min(1.0, min(amounts) / max(amounts)),
        summary=(f"{format_minor(amounts[0])} {event.currency} left {home} and came back "
                 f"({percent(min(kept, 1.0))}) through {len(cycle)} transfers within {format_elapsed(elapsed)}"),
        evidence={"paths": [list(accounts) + [home]], "hops": len(cycle), "elapsed_s": elapsed // 1000,
                  "amounts": [format_minor(a) for a in amounts]},
    )]
