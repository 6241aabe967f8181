"""identity_ring: accounts linked by shared devices, IPs or other identifiers borrow within a long window, and
their loan money converges: on one collector, or out of the ledger.

Why it matters: batch-registered accounts and stolen identities are run from a few phones and one network. Each
loan looks ordinary; the ring shows in what the loans share (the identifiers they were requested from) and
where the money goes. device_burst sees one device within hours; this sees the links between several
identifiers over days, and waits for the money to show the intent.

Two places see convergence (`stream.detection.identity`): the node the money lands on (an account, a card, a
merchant), where the borrowers whose loans arrived are linked through the identifiers they share; and each
identifier itself, where loans requested from it that left the ledger at cash-out sinks are counted. A busy
shared network (an office's Wi-Fi, a carrier's NAT) links many unrelated borrowers: groups larger than
`max_group` are not a ring, and ordinary purchases never count as convergence.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...model.money import format_minor
from ..finding import Finding
from ._common import (CASH_LIKE_MCCS, Param, count, count_strength, evidence_score, format_elapsed, hours,
                      min_amount_param, ratio, show_set, strength, string_set, within_param)

if TYPE_CHECKING:
    from ...model.events import Event
    from ...rules.model import Rule
    from ..identity import Arrival
    from ..state import DetectionState

NAME = "identity_ring"
TRIGGERS = frozenset({"transfer"})
STAGES = ("received", "linked")
REPORTS_LOAN = False
FEATURES = {"accounts": "number", "identifiers": "number", "left_ledger": "boolean"}

PARAMS = (
    Param("min_accounts", count(2), 3, "Fewest distinct linked borrowers whose loans converge.", looser="lower"),
    within_param(hours(72), "The group's loans were all disbursed within this long (ending with the newest)."),
    Param("min_share", ratio, 0.5, "Share of each counted loan that must reach the collector or leave the "
                                   "ledger (0..1): a borrower whose loan mostly went elsewhere is not part of the "
                                   "ring's convergence.", looser="lower"),
    Param("max_hops", count(1, 10), 3, "Most transfers from a borrower to the collector or the sink.",
          looser="higher"),
    Param("max_group", count(2), 20,
          "Largest linked group that counts: more borrowers than this on shared identifiers is a public "
          "network or a shared terminal, not a ring.", looser="higher"),
    min_amount_param("Ignore loans smaller than this (units)."),
    Param("sinks_channels", string_set, frozenset({"withdrawal"}),
          "Transfer channels whose destination is a cash-out sink (money leaves the ledger as cash).",
          show=show_set),
    Param("sinks_merchant_categories", string_set, CASH_LIKE_MCCS,
          "Merchant categories of `merchant` payments that count as leaving the ledger as cash.", show=show_set),
)


def _counts(arrival: "Arrival", params) -> bool:
    """Money converging: passed to an account, or cashed out. An ordinary purchase is spending, not a ring."""
    if arrival.hops > params["max_hops"] or arrival.loan_amount < params["min_amount"]:
        return False
    channel = arrival.channel
    if channel == "p2p" or channel in params["sinks_channels"]:
        return True
    return channel == "merchant" and arrival.merchant_category in params["sinks_merchant_categories"]


def prefilter(rule: "Rule", stage: str):
    """The exits of `detect` before it reads the arrivals: loan money arrived with this step, and the node holds
    arrivals from at least `min_accounts` loans (each member of a group has one there)."""
    minimum = rule.params["min_accounts"]

    def test(event: "Event", state: "DetectionState") -> bool:
        node = state.node
        return bool(state.arrived) and node is not None and state.identities.arrival_count(node) >= minimum
    return test


def linked_groups(identifiers_by_account: dict[str, set[str]]) -> list[list[str]]:
    """Accounts joined when they share an identifier (union-find), each group sorted, groups in order of their
    first account."""
    parent = {account: account for account in identifiers_by_account}

    def root(account: str) -> str:
        while parent[account] != account:
            parent[account] = parent[parent[account]]
            account = parent[account]
        return account

    first_with: dict[str, str] = {}
    for account in sorted(identifiers_by_account):
        for key in sorted(identifiers_by_account[account]):
            other = first_with.setdefault(key, account)
            if other != account:
                a, b = root(account), root(other)
                if a != b:
                    parent[max(a, b)] = min(a, b)
    groups: dict[str, list[str]] = {}
    for account in sorted(identifiers_by_account):
        groups.setdefault(root(account), []).append(account)
    return [groups[key] for key in sorted(groups)]


def detect(rule: "Rule", event: "Event", state: "DetectionState") -> list[Finding]:
    """At the node loan money just reached (or at an identifier whose loan money just left the ledger): do the
    borrowers whose loans converged here form a linked group of at least `min_accounts`?"""
    params = rule.params
    node = state.node
    fresh = [a for a in state.arrived if _counts(a, params)]
    if not fresh or node is None:
        return []
    left_ledger = state.stage == "linked"
    since = max(a.loan_ts for a in fresh) - params["within"]
    arrivals = [a for a in state.identities.arrivals_at(node)
                if a.loan_ts >= since and a.borrower != node and _counts(a, params)]
    loans: dict[str, list] = {}             # loan id -> [loan amount, arrived, loan event id, loan ts, borrower]
    for arrival in sorted(arrivals, key=lambda a: (a.ts, a.txn_id, a.loan_id)):
        loan = loans.setdefault(arrival.loan_id, [arrival.loan_amount, 0, arrival.loan_event_id, arrival.loan_ts,
                                                  arrival.borrower])
        loan[1] = min(loan[0], loan[1] + arrival.amount)
    converged = {loan_id for loan_id, loan in loans.items() if loan[1] >= params["min_share"] * loan[0]}
    identifiers: dict[str, set[str]] = {}
    for arrival in arrivals:
        if arrival.loan_id in converged:
            identifiers.setdefault(arrival.borrower, set()).update(state.identities.identifiers_of(arrival))
    new_borrowers = {a.borrower for a in fresh if a.loan_id in converged}
    candidates = [group for group in linked_groups(identifiers) if new_borrowers.intersection(group)]
    if not candidates:
        return []
    members = max(candidates, key=len)
    if not params["min_accounts"] <= len(members) <= params["max_group"]:
        return []
    member_set = set(members)
    mine = sorted((a for a in arrivals if a.borrower in member_set and a.loan_id in converged),
                  key=lambda a: (a.ts, a.txn_id, a.loan_id))
    loans = {loan_id: loan for loan_id, loan in loans.items() if loan_id in converged and loan[4] in member_set}
    lent = sum(loan[0] for loan in loans.values())
    arrived = sum(loan[1] for loan in loans.values())
    share = arrived / lent
    counted = {key: sum(1 for account in members if key in identifiers[account])
               for key in set().union(*(identifiers[account] for account in members))}
    shared = sorted(key for key, users in counted.items() if users >= 2)
    first_ts = min(loan[3] for loan in loans.values())
    elapsed = max(a.ts for a in mine) - first_ts
    where = "left the ledger" if left_ledger else f"converged on {node}"
    currency = event.currency
    return [Finding(
        subject=node, accounts=tuple(members) if left_ledger else (node, *members),
        loan_ids=tuple(sorted(loans)),
        txn_ids=tuple(dict.fromkeys([*(loan[2] for loan in sorted(loans.values(), key=lambda l: (l[3], l[2]))),
                                     *(a.txn_id for a in mine)])),
        amount=arrived, first_ts=first_ts,
        score=evidence_score(count_strength(len(members), params["min_accounts"]),
                             strength(share, params["min_share"], 1.0),
                             strength(len(shared), 1, 3)),
        summary=(f"{len(members)} accounts linked by {len(shared)} shared identifier"
                 f"{'' if len(shared) == 1 else 's'} ({', '.join(shared[:3])}{'...' if len(shared) > 3 else ''}) "
                 f"borrowed {len(loans)} loans ({format_minor(lent)} {currency}); {format_minor(arrived)} of it "
                 f"{where} within {format_elapsed(elapsed)}"),
        evidence={**({} if left_ledger else {"paths": [[member, node] for member in members]}),
                  "identifiers": shared, "accounts": len(members), "loans": len(loans),
                  "lent": format_minor(lent), "converged": format_minor(arrived), "share": round(share, 4),
                  "elapsed_s": elapsed // 1000, "left_ledger": left_ledger},
        features={"accounts": len(members), "identifiers": len(shared), "left_ledger": left_ledger},
    )]
