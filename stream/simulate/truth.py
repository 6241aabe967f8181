"""The labels of a ledger: which groups of events are planted laundering and which are benign look-alikes.

The JSON shape is the one of the AMLSim benchmark (`data/amlsim-12k/truth.json`), so the same evaluator
reads both: `{"source", "events", "planted": [instance...], "lookalikes": [instance...]}` where an instance is
`{"kind", "key", "alert_id", "accounts", "txn_ids", "loan_ids"}` (primary account first, txn ids in event-time
order), plus, from the simulator, `first_ts` / `last_ts` (RFC 3339) of the instance's first and last event so
detection delay can be measured. Unknown top-level keys are carried through untouched.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import orjson

from ..model.timefmt import format_ts, parse_rfc3339_ms
from .params import SimulationError


class TruthError(SimulationError):
    """A truth file is not in the expected shape; the message says which entry and which field."""


@dataclass(frozen=True, slots=True)
class Instance:
    kind: str
    key: str
    accounts: tuple[str, ...]
    txn_ids: tuple[str, ...]
    loan_ids: tuple[str, ...] = ()
    alert_id: int | None = None
    first_ts: int | None = None     # epoch ms of the instance's first event, when the truth says
    last_ts: int | None = None
    variant: str | None = None      # e.g. "evasive": a harder form of the typology
    drawn: Mapping[str, Any] | None = None   # with --spread: the parameters drawn for this instance

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"kind": self.kind, "key": self.key, "alert_id": self.alert_id,
                                "accounts": list(self.accounts), "txn_ids": list(self.txn_ids),
                                "loan_ids": list(self.loan_ids)}
        if self.first_ts is not None:
            data["first_ts"] = format_ts(self.first_ts)
        if self.last_ts is not None:
            data["last_ts"] = format_ts(self.last_ts)
        if self.variant is not None:
            data["variant"] = self.variant
        if self.drawn is not None:
            data["drawn"] = dict(self.drawn)
        return data


@dataclass(frozen=True, slots=True)
class Truth:
    source: str
    events: int
    planted: tuple[Instance, ...]
    lookalikes: tuple[Instance, ...]
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "events": self.events, **self.extra,
                "planted": [i.to_dict() for i in self.planted],
                "lookalikes": [i.to_dict() for i in self.lookalikes]}

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict(), option=orjson.OPT_INDENT_2) + b"\n"


def load_truth(path: str | Path) -> Truth:
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise TruthError(f"cannot read truth file {str(path)!r}: {exc.strerror or exc}") from None
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise TruthError(f"{path}: not valid JSON ({exc})") from None
    return truth_from_dict(data, where=str(path))


def truth_from_dict(data: Any, *, where: str = "<truth>") -> Truth:
    if not isinstance(data, Mapping):
        raise TruthError(f"{where}: expected a JSON object with 'planted' and 'lookalikes', got {type(data).__name__}")
    if "planted" not in data:
        raise TruthError(f"{where}: missing field 'planted' (a list of instances)")
    events = data.get("events", 0)
    if isinstance(events, bool) or not isinstance(events, int) or events < 0:
        raise TruthError(f"{where}: field 'events' must be a non-negative integer, got {events!r}")
    extra = {k: v for k, v in data.items() if k not in ("source", "events", "planted", "lookalikes")}
    return Truth(source=str(data.get("source", "")), events=events,
                 planted=_instances(data["planted"], f"{where}: planted"),
                 lookalikes=_instances(data.get("lookalikes") or [], f"{where}: lookalikes"),
                 extra=extra)


def _instances(items: Any, where: str) -> tuple[Instance, ...]:
    if not isinstance(items, list):
        raise TruthError(f"{where} must be a list of instances, got {type(items).__name__}")
    return tuple(_instance(item, f"{where}[{index}]") for index, item in enumerate(items))


def _instance(item: Any, where: str) -> Instance:
    if not isinstance(item, Mapping):
        raise TruthError(f"{where}: expected an object with kind, accounts, txn_ids, got {type(item).__name__}")
    kind = item.get("kind")
    if not isinstance(kind, str) or not kind:
        raise TruthError(f"{where}: field 'kind' must be a non-empty string, got {kind!r}")
    alert_id = item.get("alert_id")
    if alert_id is not None and (isinstance(alert_id, bool) or not isinstance(alert_id, int)):
        raise TruthError(f"{where}: field 'alert_id' must be an integer or absent, got {alert_id!r}")
    accounts = string_list(item.get("accounts"), "accounts", where)
    variant = item.get("variant")
    if variant is not None and not isinstance(variant, str):
        raise TruthError(f"{where}: field 'variant' must be a string or absent, got {variant!r}")
    drawn = item.get("drawn")
    if drawn is not None and not isinstance(drawn, Mapping):
        raise TruthError(f"{where}: field 'drawn' must be an object or absent, got {type(drawn).__name__}")
    key = item.get("key")
    if key is None:
        key = accounts[0] if accounts else ""
    return Instance(kind=kind, key=str(key), accounts=accounts,
                    txn_ids=string_list(item.get("txn_ids"), "txn_ids", where),
                    loan_ids=string_list(item.get("loan_ids"), "loan_ids", where), alert_id=alert_id,
                    first_ts=optional_ts(item.get("first_ts"), "first_ts", where),
                    last_ts=optional_ts(item.get("last_ts"), "last_ts", where),
                    variant=variant, drawn=dict(drawn) if drawn is not None else None)


def optional_ts(value: Any, name: str, where: str, error: type[Exception] = TruthError) -> int | None:
    """A labelled file's time field: RFC 3339 text (what the files hold) or epoch ms, or absent.

    Shared by truth files and warnings files; `error` is the reading module's own error class.
    """
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            return parse_rfc3339_ms(value)
        except ValueError as exc:
            raise error(f"{where}: field {name!r}: {exc}") from None
    raise error(f"{where}: field {name!r} must be RFC 3339 text or epoch ms, got {value!r}")


def string_list(value: Any, name: str, where: str, error: type[Exception] = TruthError) -> tuple[str, ...]:
    """A labelled file's list of ids (accounts, txn ids, loan ids); absent means none."""
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise error(f"{where}: field {name!r} must be a list of strings, got {str(value)[:80]!r}")
    return tuple(value)
