"""A labelled synthetic consumer-credit ledger: background life, planted laundering, benign look-alikes.

`simulate(params)` returns the events (docs/architecture.md §4 dicts, in event-time order) and the `Truth` that labels
them; `write_ledger` writes both files. Everything is drawn from one `random.Random(params.seed)`, so a seed
always gives the same bytes.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from .bad import BAD_MAKERS, plan_bad_events
from .ledger import generate_background
from .lookalikes import MAKERS
from .params import (FIRST_LOOKALIKE_KINDS, IDENTITY_KINDS, LATER_LOOKALIKE_KINDS, LOOKALIKE_KINDS, PLANTED_KINDS,
                     SimParams, SimulationError)
from .truth import Instance, Truth, TruthError, load_truth, truth_from_dict
from .typologies import PLANTERS
from .world import DISBURSEMENT, EVASIVE, PLAIN, Group, Ledger, Variant, World, draw_variant
from .writer import TimestampFormatter, event_dicts, open_output, write_jsonl

__all__ = ["LOOKALIKE_KINDS", "PLANTED_KINDS", "Instance", "SimParams", "SimulationError", "Truth", "TruthError",
           "WriteReport", "load_truth", "simulate", "truth_from_dict", "write_ledger"]


def simulate(params: SimParams) -> tuple[Iterator[dict[str, Any]], Truth]:
    """The ledger's events (lazily formatted, time-ordered) and its labels."""
    rng = random.Random(params.seed)
    world = World(params, rng)
    ledger = Ledger()
    generate_background(world, ledger)
    planted: list[Group] = []
    variants: list[Variant] = []

    def plant(kinds: list[str]) -> None:
        for kind in kinds:
            for _ in range(params.instances):
                world.variant = _variant(rng, params)
                planted.append(PLANTERS[kind](world, ledger))
                variants.append(world.variant)
        world.variant = PLAIN

    def imitate(kinds: tuple[str, ...]) -> list[Group]:
        return [MAKERS[kind](world, ledger) for kind in kinds for _ in range(params.lookalikes_per_kind)]

    # The identity typologies and their look-alikes are made after the others, so a seed's ledger keeps every
    # instance it had before they existed (with other event ids: ids follow positions in time).
    plant([kind for kind in params.kinds if kind not in IDENTITY_KINDS])
    lookalikes = imitate(FIRST_LOOKALIKE_KINDS)
    plant([kind for kind in params.kinds if kind in IDENTITY_KINDS])
    lookalikes += imitate(LATER_LOOKALIKE_KINDS)

    records = ledger.records
    records.sort()      # (ts, seq, ...): seq is unique, so ties resolve by creation order
    width = len(str(len(records)))
    event_ids: list[str] = []
    id_by_seq: list[str] = [""] * len(records)
    position_by_seq: list[int] = [0] * len(records)
    loan_ids: list[str] = [""] * ledger.loan_count
    loan_width = len(str(ledger.loan_count))
    loans_seen = 0
    for position, record in enumerate(records):
        if record[2] == DISBURSEMENT:
            event_id = f"d-{position + 1:0{width}d}"
            loans_seen += 1
            loan_ids[record[8]] = f"L-{loans_seen:0{loan_width}d}"
        else:
            event_id = f"t-{position + 1:0{width}d}"
        event_ids.append(event_id)
        id_by_seq[record[1]] = event_id
        position_by_seq[record[1]] = position

    def label(group: Group, alert_id: int, variant: Variant = PLAIN) -> Instance:
        seqs = sorted(group.seqs, key=position_by_seq.__getitem__)
        return Instance(kind=group.kind, key=group.key, accounts=tuple(group.accounts),
                        txn_ids=tuple(id_by_seq[s] for s in seqs),
                        loan_ids=tuple(loan_ids[loan] for loan in group.loans), alert_id=alert_id,
                        first_ts=records[position_by_seq[seqs[0]]][0] if seqs else None,
                        last_ts=records[position_by_seq[seqs[-1]]][0] if seqs else None, variant=variant.name,
                        drawn=variant.to_dict() if variant.name == "spread" else None)

    bad: list[tuple[int, dict[str, Any]]] = []
    bad_labels: list[dict[str, str]] = []
    if params.bad_events:
        fmt = TimestampFormatter()
        for number, (position, maker_index) in enumerate(plan_bad_events(rng, params.bad_events, len(records))):
            near = records[min(position, len(records) - 1)] if records else (world.start, 0, 1, "U0", "U1")
            maker, reason = BAD_MAKERS[maker_index]
            event_id = f"x-{number + 1:0{width}d}"
            bad.append((position, maker(event_id, fmt(near[0]), near[3], f"{near[3]}-peer")))
            bad_labels.append({"event_id": event_id, "reason": reason})

    extra: dict[str, Any] = {"params": params.to_dict()}
    if bad_labels:
        extra["bad_events"] = bad_labels
    truth = Truth(
        source=f"fundflow simulate (seed {params.seed}, {params.accounts} accounts, {params.days} days from "
               f"{params.start})",
        events=len(records),
        planted=tuple(label(g, i, variants[i]) for i, g in enumerate(planted)),
        lookalikes=tuple(label(g, len(planted) + i) for i, g in enumerate(lookalikes)),
        extra=extra,
    )
    return event_dicts(records, event_ids, loan_ids, params.currency, bad), truth


def _variant(rng: random.Random, params: SimParams) -> Variant:
    """The variant of the next planted instance. No draw at all when neither share is set, so plain ledgers keep
    their bytes."""
    if params.evasive > 0 and rng.random() < params.evasive:
        return EVASIVE
    if params.spread > 0:
        return draw_variant(rng, params.spread)
    return PLAIN


@dataclass(frozen=True)
class WriteReport:
    events: int
    planted: int
    lookalikes: int
    seconds: float

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else float("inf")


def write_ledger(params: SimParams, events_path: str | Path, truth_path: str | Path) -> WriteReport:
    started = time.perf_counter()
    events, truth = simulate(params)
    try:
        with open_output(events_path) as out:
            written = write_jsonl(events, out)
        Path(truth_path).write_bytes(truth.to_json())
    except OSError as exc:
        raise SimulationError(f"cannot write {exc.filename or events_path}: {exc.strerror or exc}") from None
    return WriteReport(written, len(truth.planted), len(truth.lookalikes), time.perf_counter() - started)
