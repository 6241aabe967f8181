"""Parameter specs and small helpers several kinds share, so the same knob reads and behaves the same in every
kind (`within`, `channels`, `require_loan_money`, ...)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ...model.events import Transfer
from ...model.money import format_minor
from ...rules.params import Param, boolean, count, duration, money, ratio, show_duration, show_set, string_set
from ...model.timefmt import MS_PER_HOUR
from ..finding import Finding
from ..graph import EdgeData, sink_node

# ISO 18245 merchant categories that turn credit into cash or near-cash: 6010 manual cash disbursement,
# 6011 ATM, 6051 quasi-cash (crypto, money orders, travellers cheques), 6540 stored-value card top-up,
# 7995 gambling, 4829 money transfer / wire.
CASH_LIKE_MCCS = frozenset({"6010", "6011", "6051", "6540", "7995", "4829"})


def show_money(minor: int) -> str:
    return format_minor(minor)


def within_param(default_ms: int, doc: str) -> Param:
    return Param("within", duration, default_ms, doc, looser="higher", show=show_duration)


def channels_param(default: frozenset[str], doc: str) -> Param:
    return Param("channels", string_set, default, doc, show=show_set)


def min_amount_param(doc: str) -> Param:
    return Param("min_amount", money, 0, doc, looser="lower", show=show_money)


def min_total_param(doc: str, default: int = 0) -> Param:
    return Param("min_total", money, default, doc, looser="lower", show=show_money)


def require_loan_money_param(default: bool, doc: str) -> Param:
    return Param("require_loan_money", boolean, default, doc)


def min_loan_share_param(doc: str, default: float = 0.5) -> Param:
    return Param("min_loan_share", ratio, default, doc, looser="lower")


def hours(n: float) -> int:
    return int(n * MS_PER_HOUR)


def max_counterparties_param(doc: str) -> Param:
    return Param("max_counterparties", count(0), 0, doc, versioned_at_default=False)


def too_busy(graph: Any, node: str, cap: int) -> bool:
    """More than `cap` counterparties (distinct senders plus distinct receivers) in the whole graph window; a cap
    of 0 means no limit. Busy accounts (businesses, payment hubs) fan in, fan out and close cycles all day as
    ordinary business, so a rule meant for quiet pass-through accounts can leave them out."""
    return cap > 0 and graph.counterparty_count(node) > cap




# -- helpers for detect() ----------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Star:
    """The qualifying transfers between one hub account and its counterparties in the densest window: what
    fan_in (many -> hub) and fan_out (hub -> many) both report."""

    counterparts: list[str]
    edges: list[tuple[str, str, EdgeData]]  # (counterpart, txn id, edge data), in event-time order
    total: int
    loan_total: int
    first_ts: int
    elapsed: int
    within: int

    def finding(self, hub: str, min_count: int, summary: str, evidence: dict) -> Finding:
        return Finding(
            subject=hub, accounts=(hub, *self.counterparts),
            loan_ids=loans_of(attrs for _, _, attrs in self.edges),
            txn_ids=tuple(key for _, key, _ in self.edges), amount=self.total, first_ts=self.first_ts,
            score=evidence_score(count_strength(len(self.counterparts), min_count),
                                 quickness(self.elapsed, self.within), self.loan_total / self.total),
            summary=summary,
            evidence={**evidence, "transfers": len(self.edges), "elapsed_s": self.elapsed // 1000,
                      "loan_share": round(self.loan_total / self.total, 4)},
        )


def star_prefilter(rule: Any, *, incoming: bool, min_count: str):
    """The cheap exits of `star` before its scan, as a kind's prefilter: the transfer itself qualifies, and the
    hub (the payee when `incoming`, else the payer) has at least the rule's `min_count` counterparts on that side
    in the whole window and is not too busy."""
    params = rule.params
    min_amount, require_loan, share = params["min_amount"], params["require_loan_money"], params["min_loan_share"]
    minimum, busy = params[min_count], params.get("max_counterparties", 0)
    side = 0 if incoming else 1

    def test(event: Transfer, state: Any) -> bool:
        if event.amount < min_amount:
            return False
        if require_loan:
            allocation = state.allocation
            loan = allocation.loan_amount if allocation is not None else 0
            if loan <= 0 or loan < share * event.amount:
                return False
        counts = state.graph.degrees(sink_node(event) if incoming else event.src)
        return counts[side] >= minimum and not (busy > 0 and counts[0] + counts[1] > busy)
    return test


def star(rule: Any, event: Transfer, state: Any, hub: str, *, incoming: bool, min_count: int) -> Star | None:
    """The transfers into (`incoming`) or out of `hub` that a fan rule counts, or None when they cannot reach
    `min_count` counterparties and the rule's `min_total`."""
    params = rule.params
    allocation = state.allocation
    loan_amount = allocation.loan_amount if allocation is not None else 0
    filters = (params["channels"], params["min_amount"], params["require_loan_money"], params["min_loan_share"])
    if not event_qualifies(event, loan_amount, *filters):
        return None
    graph = state.graph
    if (graph.sender_count(hub) if incoming else graph.receiver_count(hub)) < min_count:
        return None       # fewer neighbours in the whole window than needed: no scan
    if too_busy(graph, hub, params.get("max_counterparties", 0)):
        return None
    within = params["within"]
    # Counted before anything is built: distinct counterparts with an edge that passes the filter (loan share
    # aside) anywhere in the scanned range bound what any window of it can hold.
    enough = graph.has_senders if incoming else graph.has_receivers
    if not enough(hub, event.ts - within, event.ts + within, state.limits.degree_cap, filters[0], filters[1],
                  filters[2], min_count):
        return None
    scan = graph.in_edges if incoming else graph.out_edges
    edges = densest_window([edge for edge in scan(hub, event.ts - within, event.ts + within, state.limits.degree_cap)
                            if edge_qualifies(edge[2], *filters)], event.ts, within)
    counterparts = sorted({other for other, _, _ in edges})
    if len(counterparts) < min_count:
        return None
    total = sum(attrs.amount for _, _, attrs in edges)
    if total < params["min_total"]:
        return None
    edges.sort(key=lambda edge: (edge[2].ts, edge[1]))
    first_ts = edges[0][2].ts
    return Star(counterparts=counterparts, edges=edges, total=total,
                loan_total=sum(attrs.loan for _, _, attrs in edges),
                first_ts=first_ts, elapsed=edges[-1][2].ts - first_ts, within=within)


def format_elapsed(ms: int) -> str:
    """Analyst-friendly duration for summaries: '40 s', '25 min', '3 h 5 min', '2 d 4 h'."""
    seconds = max(ms, 0) // 1000
    if seconds < 60:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    hours_, minutes = divmod(minutes, 60)
    if hours_ < 48:
        return f"{hours_} h {minutes} min" if minutes else f"{hours_} h"
    days, hours_ = divmod(hours_, 24)
    return f"{days} d {hours_} h" if hours_ else f"{days} d"


def percent(share: float) -> str:
    return f"{int(share * 100 + 1e-9)}%"


def ordered_unique(items) -> tuple:
    return tuple(dict.fromkeys(items))


def edge_qualifies(attrs: EdgeData, channels: frozenset[str], min_amount: int, require_loan: bool,
                   min_loan_share: float) -> bool:
    """The common filter of windowed kinds over a graph edge: channel, size and (optionally) loan money."""
    if attrs.channel not in channels or attrs.amount < min_amount:
        return False
    if require_loan:
        loan = attrs.loan
        return loan > 0 and loan >= min_loan_share * attrs.amount
    return True


def event_qualifies(event, loan_amount: int, channels: frozenset[str], min_amount: int, require_loan: bool,
                    min_loan_share: float) -> bool:
    """`edge_qualifies` for the triggering transfer itself (checked first: most events stop here)."""
    if event.channel not in channels or event.amount < min_amount:
        return False
    if require_loan:
        return loan_amount > 0 and loan_amount >= min_loan_share * event.amount
    return True


def strength(value: float, threshold: float, strongest: float) -> float:
    """How far one piece of evidence goes past its rule's threshold: 0 at the threshold, 1 at `strongest` or
    beyond. For evidence that is stronger when smaller (elapsed time), pass negated values."""
    if strongest == threshold:
        return 1.0 if value >= threshold else 0.0
    return max(0.0, min(1.0, (value - threshold) / (strongest - threshold)))


def count_strength(found: int, needed: int) -> float:
    """A count against its threshold: 0 at the threshold, 1 at twice it."""
    return strength(found, needed, 2 * max(needed, 1))


def quickness(elapsed: int, within: int) -> float:
    """How fast the pattern completed against the rule's `within`: 1 at once, 0 at the limit."""
    return strength(-elapsed, -within, 0) if within > 0 else 0.0


def evidence_score(*strengths: float) -> float:
    """A warning's score, comparable across kinds: 0.5 when every piece of evidence just meets its threshold,
    1.0 when each is at its strongest, the mean of their strengths in between (docs/detection.md, "Scores")."""
    return round(0.5 + 0.5 * sum(strengths) / len(strengths), 4) if strengths else 0.5


def loans_of(attrs_list) -> tuple[str, ...]:
    return tuple(sorted({loan for attrs in attrs_list for loan in attrs.loans}))


def densest_window(edges: list, ts: int, within: int, party_index: int = 0) -> list:
    """Of the windows [end - within, end] that contain `ts`, the one with the most distinct parties.

    `edges` are (party, key, attrs) tuples with attrs.ts in [ts - within, ts + within]. For an event in time
    order nothing is later than it and this is simply [ts - within, ts]; a late event can also complete a pattern
    with transfers that happened after it, which are then counted."""
    ends = sorted({attrs.ts for _, _, attrs in edges if attrs.ts > ts})
    best = [edge for edge in edges if edge[2].ts <= ts]
    if not ends:
        return best
    best_count = len({edge[party_index] for edge in best})
    for end in ends:
        window = [edge for edge in edges if end - within <= edge[2].ts <= end]
        count = len({edge[party_index] for edge in window})
        if count > best_count:
            best, best_count = window, count
    return best
