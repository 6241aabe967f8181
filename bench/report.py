"""Figures and their targets, printed as one table at the end of a benchmark run."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence


@dataclass(frozen=True)
class Figure:
    name: str
    value: float | None                     # None: not measured (the reason goes in `note`)
    unit: str
    target: str = ""                        # e.g. ">= 50,000"; empty for a figure shown for context
    met: bool | None = None                 # None: no target, or not measured
    note: str = ""


def at_least(name: str, value: float, unit: str, bound: float, note: str = "") -> Figure:
    return Figure(name, value, unit, f">= {_number(bound)}", value >= bound, note)


def at_most(name: str, value: float, unit: str, bound: float, note: str = "") -> Figure:
    return Figure(name, value, unit, f"<= {_number(bound)}", value <= bound, note)


def info(name: str, value: float | None, unit: str, note: str = "") -> Figure:
    return Figure(name, value, unit, "", None, note)


def missing(name: str, target: str, why: str) -> Figure:
    return Figure(name, None, "", target, None, why)


def _number(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}" if value < 1 else f"{value:.2f}"


def render(figures: Sequence[Figure], write: Callable[[str], None] = print) -> None:
    rows = [("figure", "measured", "target", "", "note")]
    for figure in figures:
        measured = "-" if figure.value is None else f"{_number(figure.value)} {figure.unit}".strip()
        verdict = {True: "MET", False: "MISSED", None: ""}[figure.met]
        rows.append((figure.name, measured, figure.target, verdict, figure.note))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for index, row in enumerate(rows):
        write("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + ("  " + row[4] if row[4] else ""))
        if index == 0:
            write("  ".join("-" * width for width in widths))
