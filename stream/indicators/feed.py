"""The indicator feed: what one institution publishes, signed by it.

```json
{"feed": {"format": "fundflow.indicators/1", "source": "lender-a", "issued_at": "2026-03-08T00:00:00.000Z",
          "keys": [{"id": "k2026a", "check": "9f1c..."}],
          "entries": [{"type": "card", "key_id": "k2026a", "hmac": "<64 hex>", "reason": "rapid_cashout",
                       "first_seen": "...Z", "last_seen": "...Z", "expires": "...Z", "revoked": false}]},
 "signature": {"alg": "ed25519", "signer": "lender-a", "value": "<base64 of 64 bytes>"}}
```

The signature is Ed25519 over the canonical bytes of `feed`: JSON with sorted keys, no spaces, UTF-8. `keys`
names the consortium key(s) the entries are hashed under, each with its check value (`keys.ConsortiumKey.check`),
so a feed made under another secret that happens to share a key id is told apart. During a key rotation a feed
carries every entry under both keys. There are no amounts, account ids, names or raw identifiers in it.

`load_feed` refuses, naming the file and the reason: unreadable or oversized files, bad JSON, another format,
a malformed entry, a signer that is not the feed's source, a source that is not a member, a bad signature.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ..errors import FundflowError
from ..model.timefmt import format_ts, parse_rfc3339_ms
from .keys import valid_key_id
from .normalize import TYPES

FORMAT = "fundflow.indicators/1"
MAX_FEED_BYTES = 256 * 1024 * 1024
MAX_ENTRIES = 2_000_000
MAX_REASON = 64
CONFIRMED = "confirmed"               # the reason of an indicator an analyst confirmed (no console yet: unused)
_HMAC = re.compile(r"^[0-9a-f]{64}$")
INSTITUTION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_REASON = re.compile(r"^[a-z0-9][a-z0-9_.+-]*$")   # typologies joined by +
PEM_SUFFIX = ".pem"


class FeedError(FundflowError):
    """A feed refused as a whole: the message is `file: reason`."""

    def __init__(self, file: str, reason: str) -> None:
        self.file, self.reason = file, reason
        super().__init__(f"{file}: {reason}")


@dataclass(frozen=True, slots=True)
class Entry:
    type: str
    key_id: str
    hmac: str
    reason: str
    first_seen: int          # epoch ms
    last_seen: int
    expires: int
    revoked: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "key_id": self.key_id, "hmac": self.hmac, "reason": self.reason,
                "first_seen": format_ts(self.first_seen), "last_seen": format_ts(self.last_seen),
                "expires": format_ts(self.expires), "revoked": self.revoked}


@dataclass(frozen=True)
class Feed:
    source: str
    issued_at: int
    keys: Mapping[str, str]                   # key id -> check value
    entries: tuple[Entry, ...]
    file: str = field(default="", compare=False)

    @property
    def label(self) -> str:
        """How evidence names this feed: its source and issue time."""
        return f"{self.source}@{format_ts(self.issued_at)}"

    def body(self) -> dict[str, Any]:
        return {"format": FORMAT, "source": self.source, "issued_at": format_ts(self.issued_at),
                "keys": [{"id": key_id, "check": check} for key_id, check in sorted(self.keys.items())],
                "entries": [entry.to_dict() for entry in self.entries]}


def canonical(body: Mapping[str, Any]) -> bytes:
    """The bytes a signature covers: JSON with sorted keys, no whitespace, UTF-8."""
    return orjson.dumps(body, option=orjson.OPT_SORT_KEYS)


def sign_feed(feed: Feed, private_key: Ed25519PrivateKey) -> bytes:
    """The feed file's bytes: the body and its Ed25519 signature by the publishing institution."""
    body = feed.body()
    signature = private_key.sign(canonical(body))
    return orjson.dumps({"feed": body, "signature": {"alg": "ed25519", "signer": feed.source,
                                                     "value": base64.b64encode(signature).decode()}},
                        option=orjson.OPT_SORT_KEYS) + b"\n"


def read_private_key(path: str | Path) -> Ed25519PrivateKey:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise FundflowError(f"indicator_signing_key {str(path)!r}: cannot read ({exc.strerror})") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise FundflowError(f"indicator_signing_key {str(path)!r}: not an unencrypted PEM private key ({exc})") \
            from None
    if not isinstance(key, Ed25519PrivateKey):
        raise FundflowError(f"indicator_signing_key {str(path)!r}: an Ed25519 key is needed, got "
                            f"{type(key).__name__}")
    return key


def public_pem(key: Ed25519PrivateKey | Ed25519PublicKey) -> bytes:
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def load_members(directory: str | Path) -> dict[str, Ed25519PublicKey]:
    """The members' public keys: `<institution>.pem` files of one directory."""
    root = Path(directory)
    if not root.is_dir():
        raise FundflowError(f"--members {str(root)!r}: no such directory of <institution>.pem public keys")
    members = {}
    for path in sorted(root.glob(f"*{PEM_SUFFIX}")):
        name = path.name[:-len(PEM_SUFFIX)]
        try:
            key = serialization.load_pem_public_key(path.read_bytes())
        except (OSError, ValueError) as exc:
            raise FundflowError(f"{path}: not a PEM public key ({exc})") from None
        if not isinstance(key, Ed25519PublicKey):
            raise FundflowError(f"{path}: an Ed25519 public key is needed, got {type(key).__name__}")
        members[name] = key
    return members


def load_feed(path: str | Path, members: Mapping[str, Ed25519PublicKey]) -> Feed:
    """Read, verify and parse one feed file; `FeedError(file, reason)` for anything wrong."""
    file = str(path)
    try:
        size = Path(path).stat().st_size
        if size > MAX_FEED_BYTES:
            raise FeedError(file, f"{size} bytes; a feed is at most {MAX_FEED_BYTES}")
        data = Path(path).read_bytes()
    except OSError as exc:
        raise FeedError(file, f"cannot read ({exc.strerror})") from None
    return parse_feed(data, members, file)


def parse_feed(data: bytes, members: Mapping[str, Ed25519PublicKey], file: str = "<feed>") -> Feed:
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise FeedError(file, f"not valid JSON ({exc})") from None
    if not isinstance(document, dict) or set(document) != {"feed", "signature"}:
        raise FeedError(file, "not an indicator feed: expected an object with `feed` and `signature`")
    body, signature = document["feed"], document["signature"]
    if not isinstance(body, dict) or body.get("format") != FORMAT:
        got = body.get("format") if isinstance(body, dict) else None
        raise FeedError(file, f"format {got!r}; this version reads {FORMAT!r}")
    source = body.get("source")
    if not isinstance(source, str) or not INSTITUTION_ID.match(source):
        raise FeedError(file, f"source {str(source)[:80]!r} is not an institution id")
    if not (isinstance(signature, dict) and signature.get("alg") == "ed25519"
            and isinstance(signature.get("value"), str) and isinstance(signature.get("signer"), str)):
        raise FeedError(file, "the signature must be {alg: ed25519, signer, value}")
    signer = signature["signer"]
    if signer != source:
        raise FeedError(file, f"signed by {signer[:80]!r} but published as {source!r}: refused (a member signs "
                              f"only its own feed)")
    public = members.get(source)
    if public is None:
        known = ", ".join(sorted(members)) or "none"
        raise FeedError(file, f"unknown signer {source!r}: no {source}{PEM_SUFFIX} among the members' public keys "
                              f"(known: {known})")
    try:
        raw_signature = base64.b64decode(signature["value"], validate=True)
        public.verify(raw_signature, canonical(body))
    except (InvalidSignature, ValueError):
        raise FeedError(file, f"bad signature: the feed was changed after {source} signed it, or another key "
                              f"signed it") from None
    return _parse_body(body, file)


def _parse_body(body: dict[str, Any], file: str) -> Feed:
    issued_at = _time(body.get("issued_at"), "issued_at", file)
    raw_keys = body.get("keys")
    if not isinstance(raw_keys, list) or not raw_keys:
        raise FeedError(file, "`keys` must list the consortium key(s) the entries are hashed under")
    keys: dict[str, str] = {}
    for item in raw_keys:
        if not (isinstance(item, dict) and isinstance(item.get("id"), str) and valid_key_id(item["id"])
                and isinstance(item.get("check"), str) and re.fullmatch(r"[0-9a-f]{16}", item["check"])):
            raise FeedError(file, f"a key must be {{id, check}} with a 16-hex check value, got {str(item)[:80]}")
        keys[item["id"]] = item["check"]
    raw_entries = body.get("entries")
    if not isinstance(raw_entries, list):
        raise FeedError(file, "`entries` must be a list")
    if len(raw_entries) > MAX_ENTRIES:
        raise FeedError(file, f"{len(raw_entries)} entries; at most {MAX_ENTRIES}")
    entries = tuple(_entry(item, index, keys, file) for index, item in enumerate(raw_entries))
    return Feed(source=body["source"], issued_at=issued_at, keys=keys, entries=entries, file=file)


_ENTRY_KEYS = {"type", "key_id", "hmac", "reason", "first_seen", "last_seen", "expires", "revoked"}


def _entry(item: Any, index: int, keys: Mapping[str, str], file: str) -> Entry:
    where = f"entry {index + 1}"
    if not isinstance(item, dict) or set(item) != _ENTRY_KEYS:
        got = sorted(item) if isinstance(item, dict) else type(item).__name__
        raise FeedError(file, f"{where}: expected exactly the fields {', '.join(sorted(_ENTRY_KEYS))}, got {got}")
    if item["type"] not in TYPES:
        raise FeedError(file, f"{where}: unknown type {str(item['type'])[:40]!r}; known: {', '.join(TYPES)}")
    if item["key_id"] not in keys:
        raise FeedError(file, f"{where}: key id {str(item['key_id'])[:40]!r} is not among the feed's keys")
    if not isinstance(item["hmac"], str) or not _HMAC.match(item["hmac"]):
        raise FeedError(file, f"{where}: hmac must be 64 lower-case hex characters")
    reason = item["reason"]
    if not isinstance(reason, str) or len(reason) > MAX_REASON or not _REASON.match(reason):
        raise FeedError(file, f"{where}: reason must be a typology or {CONFIRMED!r} (lower-case, at most "
                              f"{MAX_REASON} characters)")
    if not isinstance(item["revoked"], bool):
        raise FeedError(file, f"{where}: revoked must be true or false")
    first, last, expires = (_time(item[name], f"{where}: {name}", file) for name in ("first_seen", "last_seen",
                                                                                     "expires"))
    if not first <= last <= expires:
        raise FeedError(file, f"{where}: expected first_seen <= last_seen <= expires")
    return Entry(item["type"], item["key_id"], item["hmac"], reason, first, last, expires, item["revoked"])


def _time(value: Any, what: str, file: str) -> int:
    if not isinstance(value, str):
        raise FeedError(file, f"{what}: expected an RFC 3339 time, got {str(value)[:40]!r}")
    try:
        return parse_rfc3339_ms(value)
    except ValueError as exc:
        raise FeedError(file, f"{what}: {exc}") from None


def entries_from(found: Iterable[tuple[str, str, str, int, int]], keys: Iterable[Any], ttl_ms: int
                 ) -> tuple[Entry, ...]:
    """Feed entries for (type, normalized identifier, reason, first seen, last seen), one per key (the overlap of a
    rotation hashes each under both), merged per (type, key, hash): earliest first, latest last seen."""
    found = list(found)
    merged: dict[tuple[str, str, str], list] = {}
    for key in keys:
        for kind, normalized, reason, first, last in found:
            slot = (kind, key.key_id, key.digest(kind, normalized))
            seen = merged.get(slot)
            if seen is None:
                merged[slot] = [reason, first, last]
            else:
                seen[1], seen[2] = min(seen[1], first), max(seen[2], last)
                if reason not in seen[0].split("+") and len(seen[0]) + len(reason) < MAX_REASON:
                    seen[0] = "+".join(sorted({*seen[0].split("+"), reason}))
    return tuple(Entry(kind, key_id, digest, reason, first, last, last + ttl_ms)
                 for (kind, key_id, digest), (reason, first, last) in sorted(merged.items()))
