"""Parameter specs and small helpers several kinds share, so the same knob reads and behaves the same in every
kind (`within`, `channels`, `require_loan_money`, ...)."""

from __future__ import annotations

from typing import Any

from ...money import format_minor
from ...rules.params import Param, boolean, count, duration, money, ratio, show_duration, show_set, string_set
from ...timefmt import MS_PER_HOUR

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


__all__ = ["CASH_LIKE_MCCS", "Param", "boolean", "count", "duration", "money", "ratio", "show_duration", "show_set",
           "string_set", "within_param", "channels_param", "min_amount_param", "min_total_param",
           "require_loan_money_param", "min_loan_share_param", "hours", "show_money", "Any"]
