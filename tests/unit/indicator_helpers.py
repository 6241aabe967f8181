"""Keys, members and feeds for the indicator tests: two institutions of one consortium (and an outsider)."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from stream.indicators.feed import Feed, entries_from, public_pem, sign_feed
from stream.indicators.keys import ConsortiumKey
from stream.model.timefmt import parse_rfc3339_ms

KEY = ConsortiumKey("k2026a", bytes(range(32)))
NEW_KEY = ConsortiumKey("k2026b", bytes(range(1, 33)))
OTHER_SECRET = ConsortiumKey("k2026a", bytes(range(2, 34)))      # same id, another secret
DAY = 86_400_000
T0 = parse_rfc3339_ms("2026-03-02T10:00:00Z")


def signing_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def write_private(path: Path, key: Ed25519PrivateKey) -> Path:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    return path


def write_member(directory: Path, name: str, key: Ed25519PrivateKey) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{name}.pem").write_bytes(public_pem(key))


def write_key(directory: Path, key: ConsortiumKey) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{key.key_id}.key").write_text(key.secret.hex() + "\n")


def make_feed(source: str, found, *, keys=(KEY,), issued_at: int = T0 + DAY, ttl: int = 90 * DAY, revoked=()):
    """A feed of (type, normalized, reason, first, last) found items; `revoked`: (type, normalized) revocations."""
    entries = list(entries_from(found, keys, ttl))
    for kind, normalized in revoked:
        for key in keys:
            from stream.indicators.feed import Entry
            entries.append(Entry(kind, key.key_id, key.digest(kind, normalized), "revoked", T0, T0, T0, True))
    return Feed(source=source, issued_at=issued_at, keys={key.key_id: key.check for key in keys},
                entries=tuple(entries))


def signed(feed: Feed, key: Ed25519PrivateKey, path: Path) -> Path:
    path.write_bytes(sign_feed(feed, key))
    return path
