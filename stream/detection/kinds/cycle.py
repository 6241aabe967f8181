"""cycle: money returns to the account it left through a time-respecting chain of 2..max_len transfers, keeping
most of its amount, within a window.

Why it matters: round-tripping fakes turnover (to raise credit limits) or launders money back to its owner.

Runs at the account the closing transfer lands on, and follows the chain backwards from the payer:

- `in_time_order: true` (default): from provenance alone, through what each account had received when it sent
  the next leg on. A chain in time order was booked in that order too, so nothing else is needed, and no
  message leaves the partition. The busy-account cap applies to each account's counterparties when it sent.
- `in_time_order: false`: the legs may have been booked in any order, so what an account received after it sent
  counts too. The search then continues at each account's own partition (a `Searching` hop per account
  visited) over its current inflows, and the best ring is chosen once every branch has come back. Costlier,
  hence only when asked.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...model.events import Transfer
from ...model.money import format_minor
from ..finding import Finding
from ..graph import EdgeData
from ..hops import Searching
from ..provenance import walk
from ._common import (Param, boolean, channels_param, count, format_elapsed, hours, loans_of,
                      max_counterparties_param, min_amount_param, ordered_unique, percent, ratio, too_busy,
                      within_param, evidence_score, quickness, strength)

if TYPE_CHECKING:
    from ...model.events import Event
    from ...rules.model import Rule
    from ..state import DetectionState

NAME = "cycle"
TRIGGERS = frozenset({"transfer"})
STAGES = ("received",)

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
          "false: the timestamps of the legs may be in any order, as long as each leg was booked before the "
          "next one was sent (ledgers booked in daily batches, or rings whose legs are paid from each account's "
          "own balance).", versioned_at_default=False),
    Param("require_loan_money", boolean, False,
          "Only cycles whose first transfer carried money traced to a disbursement: a loan parked with an "
          "accomplice, not a friend repaying a personal loan.", versioned_at_default=False),
)


MAX_CYCLES = 16     # cycles collected per event before the best is chosen


def canonical(accounts: tuple[str, ...]) -> str:
    """The same cycle read from any starting account gets the same name: rotate to the smallest account."""
    start = accounts.index(min(accounts))
    return ">".join(accounts[start:] + accounts[:start])


def channels(rule: "Rule") -> frozenset[str]:
    return rule.params["channels"] & {"p2p"}


def prefilter(rule: "Rule", stage: str):
    """The exits of `detect` before its search: the closing transfer is large enough, the payer had received
    something, the payee has sent something, and neither is too busy."""
    params = rule.params
    min_amount, busy = params["min_amount"], params["max_counterparties"]

    def test(event: Transfer, state: "DetectionState") -> bool:
        if event.amount < min_amount or state.before is None:
            return False
        senders, receivers = state.graph.degrees(event.dst)
        return receivers >= 1 and not (busy > 0 and (senders + receivers > busy
                                                     or state.sender_counterparties > busy))
    return test


def detect(rule: "Rule", event: "Event", state: "DetectionState") -> list:
    """At v, on a transfer u -> v: did v's money come back through an earlier chain v -> ... -> u? Searched
    backwards from u, at most `max_len` - 1 transfers deep, `branch_cap` senders per account and `path_budget`
    transfers in all. Returns findings, or (`in_time_order: false`) the hops that carry the search on."""
    if not isinstance(event, Transfer) or event.channel != "p2p":
        return []
    params = rule.params
    if event.channel not in params["channels"] or event.amount < params["min_amount"]:
        return []
    graph = state.graph
    home = event.dst
    if state.before is None or graph.receiver_count(home) < 1:
        return []       # nothing ever reached the payer or left the payee: no chain to close
    busy_cap = params["max_counterparties"]
    if too_busy(graph, home, busy_cap) or (busy_cap > 0 and state.sender_counterparties > busy_cap):
        return []
    search = RingSearch(rule, event, state)
    start = Searching(event.src, search, event.src, event.ts, ((event.src, home, event.event_id,
                                                                   EdgeData(event.ts, event.amount, event.channel)),),
                      frozenset({home, event.src}), event.amount, event.amount)
    if not params["in_time_order"]:
        return [start]
    search.follow(start, state.before, hops=None)
    return search.finish()


class RingSearch:
    """One closing transfer's search for rings: the budget, the rings found, and how to choose among them."""

    def __init__(self, rule: "Rule", event: Transfer, state: "DetectionState") -> None:
        params = rule.params
        self.rule = rule
        self.event = event
        self.home = event.dst
        self.since = state.window_start(event.ts - params["within"])
        self.branch_cap = state.limits.branch_cap
        self.budget = state.limits.path_budget
        self.loan_ids = state.allocation.loan_ids if state.allocation is not None else ()
        self.found: list[tuple[tuple[str, str, str, dict], ...]] = []

    def expand(self, state: "DetectionState", hop: Searching) -> list[Searching]:
        """At the partition of the account `hop` reached: its current inflows, unless it is too busy now."""
        if hop.node != self.event.src and too_busy(state.graph, hop.node, self.rule.params["max_counterparties"]):
            return []
        hops: list[Searching] = []
        self.follow(hop, state.provenance.inflows(hop.node), hops=hops)
        return hops

    def follow(self, at: Searching, inflows, hops: list | None) -> None:
        """The inflows of `at.node` that extend its chain: rings are recorded; longer chains are followed in
        place through provenance (`hops` None) or sent on as hops to the sender's partition."""
        params = self.rule.params
        channels, min_amount, min_ratio = params["channels"], params["min_amount"], params["min_ratio"]
        min_len, max_len, busy_cap = params["min_len"], params["max_len"], params["max_counterparties"]
        in_time_order = params["in_time_order"]
        for inflow in walk(inflows, self.since, at.until, self.branch_cap):
            self.budget -= 1
            if self.budget < 0 or len(self.found) >= MAX_CYCLES:
                return
            src, key, attrs = inflow.src, inflow.key, inflow.attrs
            if key == self.event.event_id or attrs.channel not in channels:
                continue
            amount = attrs.amount
            lo, hi = min(at.low, amount), max(at.high, amount)
            if lo < min_amount or lo < min_ratio * hi:
                continue
            chain = ((src, at.node, key, attrs), *at.chain)       # newest first: the closing edge is last
            if src == self.home:
                if len(chain) >= min_len:
                    self.found.append(chain)
                continue
            if src in at.visited or len(chain) + 1 > max_len:
                continue
            following = Searching(src, self, src, attrs.ts if in_time_order else at.until, chain,
                                  at.visited | {src}, lo, hi)
            if hops is not None:
                hops.append(following)
            elif not (busy_cap > 0 and inflow.sender_counterparties > busy_cap):
                self.follow(following, inflow.before, hops=None)

    def finish(self) -> list[Finding]:
        found = self.found
        if self.rule.params["require_loan_money"]:
            found = [edges for edges in found if edges[0][3].loan > 0]
        if not found:
            return []
        event, home = self.event, self.home
        cycle = min(found, key=lambda edges: (len(edges), edges[0][3].ts, tuple(e[2] for e in edges)))
        accounts = tuple(src for src, _, _, _ in cycle)
        first_ts = min(attrs.ts for _, _, _, attrs in cycle)     # the first leg, when they are in time order
        elapsed = event.ts - first_ts
        amounts = [attrs.amount for _, _, _, attrs in cycle]
        kept = event.amount / amounts[0]
        loan_ids = tuple(sorted(set(loans_of(attrs for _, _, _, attrs in cycle[:-1])) | set(self.loan_ids)))
        return [Finding(
            subject=canonical(accounts), accounts=accounts, loan_ids=loan_ids,
            txn_ids=ordered_unique(key for _, _, key, _ in cycle), amount=min(amounts), first_ts=first_ts,
            score=evidence_score(strength(min(amounts) / max(amounts), self.rule.params["min_ratio"], 1.0),
                                 quickness(elapsed, self.rule.params["within"])),
            summary=(f"{format_minor(amounts[0])} {event.currency} left {home} and came back "
                     f"({percent(min(kept, 1.0))}) through {len(cycle)} transfers within "
                     f"{format_elapsed(elapsed)}"),
            evidence={"paths": [list(accounts) + [home]], "hops": len(cycle), "elapsed_s": elapsed // 1000,
                      "amounts": [format_minor(a) for a in amounts]},
        )]
