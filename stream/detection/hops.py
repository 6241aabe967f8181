"""The messages detection sends between keys: one event starts at the key that owns its first account, and
everything that crosses to another key travels as a hop addressed to that key.

| message    | key                     | carries                                                        |
|------------|-------------------------|----------------------------------------------------------------|
| Sent       | the transfer's sender   | the transfer                                                   |
| Received   | the node it lands on    | the edge, the traced pieces, the sender's inflows (provenance) |
| Exited     | a loan's borrower       | the loan's pieces that left the ledger with the transfer       |
| Borrowed   | the borrower            | the disbursement                                               |
| Requested  | `device:<id>`, `ip:<a>` | the disbursement, the requester keys still to visit            |
| LeftVia    | an identifier key       | a loan's pieces that left the ledger, to its identifiers       |
| Searching  | an account              | a search continued over that account's current inflows         |
| Candidate  | the cooldown key        | a finding, to be admitted (allow-list, where, cooldown)        |

Offline all partitions run in one process and a hop is a Python object. Nothing changes a hop or what it
refers to once it is sent, so carrying a reference is the same as carrying a copy. Hops are msgspec structs,
built in C from their arguments: two or three are made per event, and a frozen dataclass's field-by-field
`object.__setattr__` (or even a plain dataclass's Python `__init__`) would cost more than the rest of a hop's
life. The steps of an event (Sent to Requested) are also left out of the cyclic collector: each refers only to
what existed before it (the event, its allocation, the sender's inflows), so none can be part of a cycle.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec

from ..model.events import Disbursement, Transfer
from .provenance import Inflow
from .tracer import Allocation, Lot

if TYPE_CHECKING:
    from ..rules.model import Rule
    from .graph import EdgeData
    from .finding import Finding


class Sent(msgspec.Struct, gc=False):
    key: str
    transfer: Transfer


class Received(msgspec.Struct, gc=False):
    key: str
    transfer: Transfer
    attrs: EdgeData
    allocation: Allocation
    before: Inflow | None
    sender_counterparties: int
    fired: frozenset[str]


class Exited(msgspec.Struct, gc=False):
    key: str
    transfer: Transfer
    loan_id: str
    pieces: tuple[Lot, ...]


class Borrowed(msgspec.Struct, gc=False):
    key: str
    disbursement: Disbursement


class Requested(msgspec.Struct, gc=False):
    key: str
    disbursement: Disbursement
    later: tuple[str, ...]
    fired: frozenset[str]


class LeftVia(msgspec.Struct, gc=False):
    """Money of a loan left the ledger: told to each identifier the loan was requested from (identity_ring)."""

    key: str
    transfer: Transfer
    pieces: tuple[Lot, ...]


class Searching(msgspec.Struct):
    """A multi-hop search reaching `node`: the search (which expands it and, once every branch is back, says
    what it found), and the branch so far."""

    key: str
    search: Any
    node: str
    until: int
    chain: tuple
    visited: frozenset[str]
    low: int
    high: int


class Candidate(msgspec.Struct):
    key: str
    rule: "Rule"
    event: Transfer | Disbursement
    finding: "Finding"


Message = Sent | Received | Exited | Borrowed | Requested | LeftVia | Searching | Candidate
