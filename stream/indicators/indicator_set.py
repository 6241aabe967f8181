"""The local indicator set: every live entry of the members' feeds, merged, and the lookup detection runs.

An indicator is keyed by (type, consortium key id, hmac) and listed by one or more sources (institutions), each
with its reason, first and last seen, expiry and the feed it came in. `lookup(type, raw, at_ms)` normalizes the
event's identifier, hashes it under every key this institution holds (during a rotation both the old and the
new key), and returns the listings live at `at_ms`, the event's time: never the wall clock, so a replay of a
ledger gives the same warnings whenever it runs.

`merge` applies feeds to a set (what `fundflow indicators import` does): new entries are added, repeated ones
update first/last seen and expiry, a revocation removes the entry of the same source (a source cannot revoke
another's), entries expired at the import time are dropped, and a feed older than the last one imported from
its source is refused (a replayed old feed cannot bring revoked entries back). The set is stored as one JSON
file, `indicators.json`, in the `indicators_dir` directory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import orjson

from ..errors import FundflowError
from ..model.timefmt import format_ts, parse_rfc3339_ms
from .feed import Feed, FeedError
from .keys import ConsortiumKey
from .normalize import TYPES, try_normalize

SET_FORMAT = "fundflow.indicator-set/1"
# Hashes of identifiers looked up recently (the same device, IP or card recurs across events): what a lookup of
# a value seen before costs is one dict read. Cleared when full, so it stays bounded; per set, so a reload
# starts afresh.
CACHE_SIZE = 1 << 16
SET_FILE = "indicators.json"
Slot = tuple[str, str, str]             # (type, key id, hmac)


class IndicatorSetError(FundflowError):
    """The local indicator set cannot be read or does not fit the consortium keys held here."""


@dataclass(frozen=True, slots=True)
class Listing:
    """One source's entry for an indicator."""

    source: str
    reason: str
    first_seen: int
    last_seen: int
    expires: int
    feed: str                           # the feed it came in: source@issued_at

    def live(self, at_ms: int) -> bool:
        return at_ms < self.expires


@dataclass(frozen=True)
class Match:
    """What an identifier matched: its type, the key and hash it matched under, and the live listings."""

    type: str
    key_id: str
    hmac: str
    listings: tuple[Listing, ...]

    @property
    def sources(self) -> tuple[str, ...]:
        return tuple(sorted({listing.source for listing in self.listings}))

    def evidence(self, field_name: str) -> dict[str, Any]:
        """What a warning says about the match: never the identifier, only what the feeds carried."""
        return {"type": self.type, "field": field_name, "key_id": self.key_id, "hmac": self.hmac,
                "sources": list(self.sources),
                "reasons": sorted({listing.reason for listing in self.listings}),
                "feeds": sorted({listing.feed for listing in self.listings}),
                "first_seen": format_ts(min(listing.first_seen for listing in self.listings)),
                "last_seen": format_ts(max(listing.last_seen for listing in self.listings))}


class IndicatorSet:
    """Immutable once built; the worker swaps in a new one on reload."""

    def __init__(self, listings: Mapping[Slot, Mapping[str, Listing]] | None = None,
                 keys: Mapping[str, ConsortiumKey] | None = None,
                 sources: Mapping[str, Mapping[str, Any]] | None = None, path: str = "") -> None:
        self._listings = {slot: dict(by_source) for slot, by_source in (listings or {}).items() if by_source}
        present = {key_id for _, key_id, _ in self._listings}
        self._keys = tuple(key for key_id, key in sorted((keys or {}).items()) if key_id in present)
        self._types = frozenset(kind for kind, _, _ in self._listings)
        self.sources = dict(sources or {})
        self.path = path
        self._digests: dict[tuple[str, object], tuple[tuple[str, str], ...]] = {}

    # -- reading -------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._listings)

    def __bool__(self) -> bool:
        return bool(self._listings)

    @property
    def types(self) -> frozenset[str]:
        return self._types

    @property
    def key_ids(self) -> tuple[str, ...]:
        return tuple(key.key_id for key in self._keys)

    def describe(self) -> str:
        if not self._listings:
            return "no indicators"
        by_type = {kind: 0 for kind in TYPES}
        for kind, _, _ in self._listings:
            by_type[kind] += 1
        counts = ", ".join(f"{n} {kind}" for kind, n in by_type.items() if n)
        return (f"{len(self._listings)} indicators ({counts}) from {len(self.sources)} source(s) "
                f"({', '.join(sorted(self.sources))}) under key(s) {', '.join(self.key_ids) or 'none held'}")

    def lookup(self, kind: str, raw: object, at_ms: int) -> Match | None:
        """The live listings of `raw` as an identifier of type `kind` at event time `at_ms`, or None."""
        if kind not in self._types or raw is None:
            return None
        cache = self._digests
        digests = cache.get((kind, raw))
        if digests is None:
            normalized = try_normalize(kind, raw)
            digests = () if normalized is None else tuple((key.key_id, key.digest(kind, normalized))
                                                          for key in self._keys)
            if len(cache) >= CACHE_SIZE:
                cache.clear()
            cache[(kind, raw)] = digests
        listings = self._listings
        for key_id, digest in digests:
            by_source = listings.get((kind, key_id, digest))
            if by_source:
                live = tuple(listing for _, listing in sorted(by_source.items()) if listing.live(at_ms))
                if live:
                    return Match(kind, key_id, digest, live)
        return None

    def listed(self, value: object, at_ms: int) -> bool:
        """True when `value` is a live indicator of any type it normalizes to (the where function `listed`)."""
        return any(self.lookup(kind, value, at_ms) is not None for kind in self._types)

    def slots(self) -> dict[Slot, dict[str, Listing]]:
        return {slot: dict(by_source) for slot, by_source in self._listings.items()}

    # -- the file ------------------------------------------------------------------------------------------
    def to_bytes(self, key_checks: Mapping[str, str]) -> bytes:
        entries = [{"type": kind, "key_id": key_id, "hmac": digest, "source": listing.source,
                    "reason": listing.reason, "first_seen": format_ts(listing.first_seen),
                    "last_seen": format_ts(listing.last_seen), "expires": format_ts(listing.expires),
                    "feed": listing.feed}
                   for (kind, key_id, digest), by_source in sorted(self._listings.items())
                   for _, listing in sorted(by_source.items())]
        return orjson.dumps({"format": SET_FORMAT, "keys": dict(sorted(key_checks.items())),
                             "sources": dict(sorted(self.sources.items())), "entries": entries},
                            option=orjson.OPT_SORT_KEYS) + b"\n"


EMPTY = IndicatorSet()


def read_set(directory: str | Path, keys: Mapping[str, ConsortiumKey]) -> IndicatorSet:
    """The set stored in `directory` (an empty set when nothing was imported yet), checked against the keys held
    here: an entry under a key id this institution holds with another secret is an error, not a silent miss."""
    path = Path(directory) / SET_FILE
    if not Path(directory).is_dir():
        raise IndicatorSetError(f"indicators_dir {str(directory)!r}: no such directory")
    if not path.exists():
        return IndicatorSet(keys=keys, path=str(path))
    try:
        document = orjson.loads(path.read_bytes())
    except OSError as exc:
        raise IndicatorSetError(f"{path}: cannot read ({exc.strerror})") from None
    except orjson.JSONDecodeError as exc:
        raise IndicatorSetError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(document, dict) or document.get("format") != SET_FORMAT:
        raise IndicatorSetError(f"{path}: not an indicator set of format {SET_FORMAT!r}")
    checks = document.get("keys") or {}
    for key_id, check in sorted(checks.items()):
        if key_id in keys and keys[key_id].check != check:
            raise IndicatorSetError(f"{path}: consortium key {key_id!r} held here is not the one the set was "
                                    f"imported under (check value {keys[key_id].check} != {check})")
    listings: dict[Slot, dict[str, Listing]] = {}
    try:
        for item in document.get("entries") or ():
            listing = Listing(item["source"], item["reason"], parse_rfc3339_ms(item["first_seen"]),
                              parse_rfc3339_ms(item["last_seen"]), parse_rfc3339_ms(item["expires"]), item["feed"])
            listings.setdefault((item["type"], item["key_id"], item["hmac"]), {})[listing.source] = listing
    except (KeyError, TypeError, ValueError) as exc:
        raise IndicatorSetError(f"{path}: a malformed entry ({type(exc).__name__}: {exc})") from None
    return IndicatorSet(listings, keys, document.get("sources") or {}, path=str(path))


def write_set(directory: str | Path, indicators: IndicatorSet, keys: Mapping[str, ConsortiumKey]) -> Path:
    """Write the set beside its file and rename it over, so a reader (the worker's reload) sees the old file or
    the new one, never half of one. The one write this layer does: the local set is its own format."""
    import os

    target = Path(directory) / SET_FILE
    temporary = target.with_name(f".{SET_FILE}.tmp-{os.getpid()}")
    with open(temporary, "wb") as out:
        out.write(indicators.to_bytes({key_id: key.check for key_id, key in keys.items()}))
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, target)
    return target


# -- merging feeds -------------------------------------------------------------------------------------------

@dataclass
class ImportReport:
    added: int = 0
    updated: int = 0
    duplicates: int = 0
    revoked: int = 0
    expired: int = 0
    ignored: list[str] = field(default_factory=list)      # entries left out, with why (counted per feed)
    refused: list[str] = field(default_factory=list)      # whole feeds refused: file: reason
    feeds: list[str] = field(default_factory=list)        # feeds merged: label (file)

    def render(self) -> str:
        lines = [f"imported {len(self.feeds)} feed(s)" + "".join(f"\n  {feed}" for feed in self.feeds),
                 f"added {self.added}, updated {self.updated}, duplicates {self.duplicates}, revoked {self.revoked}, "
                 f"expired {self.expired}, refused feeds {len(self.refused)}"]
        lines += [f"ignored: {note}" for note in self.ignored]
        lines += [f"refused: {note}" for note in self.refused]
        return "\n".join(lines)


def merge(current: IndicatorSet, feeds: Iterable[Feed], keys: Mapping[str, ConsortiumKey], now_ms: int,
          report: ImportReport | None = None) -> tuple[IndicatorSet, ImportReport]:
    """Apply verified feeds (oldest first) to `current`; `now_ms` judges which entries have expired."""
    report = report if report is not None else ImportReport()
    listings = current.slots()
    sources = {name: dict(info) for name, info in current.sources.items()}
    for feed in sorted(feeds, key=lambda feed: (feed.issued_at, feed.source, feed.file)):
        try:
            usable = _usable_keys(feed, keys)
        except FeedError as exc:
            report.refused.append(str(exc))
            continue
        last = sources.get(feed.source, {}).get("issued_at")
        if last is not None and parse_rfc3339_ms(last) > feed.issued_at:
            report.refused.append(f"{feed.file}: issued {format_ts(feed.issued_at)}, older than the feed already "
                                  f"imported from {feed.source} (issued {last}): refused, so an old feed cannot bring "
                                  f"back what a later one revoked")
            continue
        other_keys = 0
        for entry in feed.entries:
            if entry.key_id not in usable:
                other_keys += 1
                continue
            slot = (entry.type, entry.key_id, entry.hmac)
            by_source = listings.get(slot, {})
            held = by_source.get(feed.source)
            if entry.revoked:
                if held is not None:
                    del by_source[feed.source]
                    report.revoked += 1
                continue
            if entry.expires <= now_ms:
                report.expired += 1
                if held is not None:
                    del by_source[feed.source]
                continue
            new = Listing(feed.source, entry.reason, entry.first_seen, entry.last_seen, entry.expires, feed.label)
            if held is None:
                report.added += 1
            else:
                new = Listing(feed.source, entry.reason, min(held.first_seen, new.first_seen),
                              max(held.last_seen, new.last_seen), max(held.expires, new.expires), feed.label)
                if (new.first_seen, new.last_seen, new.expires, new.reason) == (
                        held.first_seen, held.last_seen, held.expires, held.reason):
                    report.duplicates += 1
                    new = held
                else:
                    report.updated += 1
            listings.setdefault(slot, by_source)[feed.source] = new
        if other_keys:
            report.ignored.append(f"{feed.file}: {other_keys} entries under consortium key(s) this institution "
                                  f"does not hold ({', '.join(sorted(set(feed.keys) - set(usable)))})")
        sources[feed.source] = {"issued_at": format_ts(feed.issued_at), "feed": feed.label}
        report.feeds.append(f"{feed.label} ({feed.file}): {len(feed.entries)} entries")
    for slot, by_source in list(listings.items()):          # what expired since the last import
        for source, listing in list(by_source.items()):
            if not listing.live(now_ms):
                del by_source[source]
                report.expired += 1
        if not by_source:
            del listings[slot]
    return IndicatorSet(listings, keys, sources, path=current.path), report


def _usable_keys(feed: Feed, keys: Mapping[str, ConsortiumKey]) -> set[str]:
    """The feed's key ids this institution holds with the same secret; a feed with none is refused."""
    usable, wrong = set(), []
    for key_id, check in sorted(feed.keys.items()):
        key = keys.get(key_id)
        if key is None:
            continue
        if key.check != check:
            wrong.append(key_id)
        else:
            usable.add(key_id)
    if wrong:
        raise FeedError(feed.file, f"made under another secret than this institution's consortium key "
                                   f"{', '.join(wrong)} (check values differ): wrong consortium key, refused")
    if not usable:
        raise FeedError(feed.file, f"hashed under consortium key(s) {', '.join(sorted(feed.keys))}, none of which "
                                   f"this institution holds (it holds: {', '.join(sorted(keys)) or 'none'}): "
                                   f"refused")
    return usable
