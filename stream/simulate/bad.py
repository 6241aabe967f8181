"""Malformed events on request (`--bad-events N`): the dead-letter path needs traffic too.

Each one is refused by `stream.model.events.parse_event` for a known reason code, which the truth file records, so
a test can check that every bad event reached the dead-letter topic with the right reason.
"""

from __future__ import annotations

import random
from typing import Any, Callable

BadMaker = Callable[[str, str, str, str], dict[str, Any]]


def _negative_amount(event_id: str, ts: str, src: str, dst: str) -> dict[str, Any]:
    return _transfer(event_id, ts, src, dst) | {"amount": "-120.00"}


def _three_decimals(event_id: str, ts: str, src: str, dst: str) -> dict[str, Any]:
    return _transfer(event_id, ts, src, dst) | {"amount": "99.995"}


def _missing_dst(event_id: str, ts: str, src: str, dst: str) -> dict[str, Any]:
    event = _transfer(event_id, ts, src, dst)
    del event["dst"]
    return event


def _self_transfer(event_id: str, ts: str, src: str, dst: str) -> dict[str, Any]:
    return _transfer(event_id, ts, src, src)


def _unknown_type(event_id: str, ts: str, src: str, dst: str) -> dict[str, Any]:
    return _transfer(event_id, ts, src, dst) | {"type": "refund"}


def _seconds_timestamp(event_id: str, ts: str, src: str, dst: str) -> dict[str, Any]:
    return _transfer(event_id, ts, src, dst) | {"ts": 1_772_000_000}


def _unreadable_timestamp(event_id: str, ts: str, src: str, dst: str) -> dict[str, Any]:
    return _transfer(event_id, ts, src, dst) | {"ts": ts.replace("T", " at ")}


def _numeric_account(event_id: str, ts: str, src: str, dst: str) -> dict[str, Any]:
    return _transfer(event_id, ts, src, dst) | {"src": 1001}


# maker -> the reason code parse_event gives it
BAD_MAKERS: tuple[tuple[BadMaker, str], ...] = (
    (_negative_amount, "bad_amount"),
    (_three_decimals, "bad_amount"),
    (_missing_dst, "missing_field"),
    (_self_transfer, "self_transfer"),
    (_unknown_type, "unknown_type"),
    (_seconds_timestamp, "absurd_timestamp"),
    (_unreadable_timestamp, "bad_timestamp"),
    (_numeric_account, "wrong_type"),
)


def _transfer(event_id: str, ts: str, src: str, dst: str) -> dict[str, Any]:
    return {"type": "transfer", "event_id": event_id, "ts": ts, "src": src, "dst": dst, "amount": "50.00",
            "currency": "CNY", "channel": "p2p", "merchant_category": None, "device_id": None, "ip": None}


def plan_bad_events(rng: random.Random, count: int, positions: int) -> list[tuple[int, int]]:
    """(position in the ledger to insert before, maker index), ascending by position."""
    if count <= 0:
        return []
    return sorted((rng.randrange(positions + 1), index % len(BAD_MAKERS)) for index in range(count))
