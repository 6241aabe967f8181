"""What `fundflow indicators publish` and `import` do between the warning store, the feeds and the local set.

Publishing reads warnings (as `fundflow warnings --json` shows them) and keeps only identifiers other institutions
also see: the bank cards loans were cashed out to (`card:` sinks and path ends of the evidence), and the devices
and IPs loans were requested from (`device:` / `ip:` requesters of device-burst evidence). Never an account id, a
merchant, an amount or a name. Warnings of `shared_indicator` rules are left out: what another lender listed is
theirs to publish, and republishing it would echo it round the consortium as if it were new.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from ..indicators.normalize import Refused, normalize
from ..model.timefmt import parse_rfc3339_ms

SHARED_KIND = "shared_indicator"
_PREFIXES = (("card:", "card"), ("device:", "device"), ("ip:", "ip"))


@dataclass
class Extraction:
    found: list[tuple[str, str, str, int, int]] = field(default_factory=list)   # type, normalized, reason, first, last
    warnings: int = 0
    skipped_shared: int = 0
    refused: Counter = field(default_factory=Counter)                             # why an identifier was refused


def identifiers_of(evidence: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(type, raw identifier) of what a warning's evidence names that other institutions also see."""
    seen: list[str] = []
    for sink in evidence.get("sinks") or ():
        seen.append(sink)
    for path in evidence.get("paths") or ():
        if isinstance(path, list) and path:
            seen.append(path[-1])
    requester = evidence.get("requester")
    if requester is not None:
        seen.append(requester)
    found = []
    for item in seen:
        if not isinstance(item, str):
            continue
        for prefix, kind in _PREFIXES:
            if item.startswith(prefix) and (kind, item) not in found:
                found.append((kind, item))
    return found


def extract(warnings: Iterable[Mapping[str, Any]], *, reason: str | None = None) -> Extraction:
    """The identifiers of stored warnings (the `fundflow warnings --json` shape), each with its reason (the
    warning's kind, its typology, unless `reason` is given: `confirmed` for analyst-confirmed warnings) and when
    it was seen (the warning's first and event times)."""
    result = Extraction()
    for warning in warnings:
        if warning.get("kind") == SHARED_KIND:
            result.skipped_shared += 1
            continue
        result.warnings += 1
        first, last = parse_rfc3339_ms(warning["first_ts"]), parse_rfc3339_ms(warning["event_ts"])
        for kind, raw in identifiers_of(warning.get("evidence") or {}):
            try:
                normalized = normalize(kind, raw[len(kind) + 1:])
            except Refused as exc:
                result.refused[f"{kind}: {exc}"[:160]] += 1
                continue
            result.found.append((kind, normalized, reason or str(warning["kind"]), min(first, last),
                                 max(first, last)))
    return result


def write_atomically(path: str | Path, data: bytes, mode: int | None = None) -> None:
    """Write beside the target and rename, so a reader (the worker's reload) sees the old file or the new one."""
    target = Path(path)
    temporary = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    with open(temporary, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    if mode is not None:
        os.chmod(temporary, mode)
    os.replace(temporary, target)
