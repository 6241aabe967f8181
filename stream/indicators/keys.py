"""Consortium keys: the secrets every member holds, by key id, and the keyed hash of an identifier.

An indicator is published as HMAC-SHA256(key, type + 0x1F + normalized identifier), in lower-case hex. Without
the key the hash cannot be computed for a guess, so a feed is useless to whoever does not hold it; with it, a
member can only test identifiers it already has. A key's *check value* (HMAC of a fixed label) tells two
members whether they hold the same secret under the same id without revealing it.

Keys are files `<key_id>.key` in one directory (the `indicator_keys` setting): at least 32 bytes of secret,
given as 64+ hex characters (one line) or raw bytes. Rotation: a new key id is distributed, feeds are
published under both the new and the old one during the overlap (`--also-key` / `indicator_overlap_key_id`),
then the old file is removed.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

from ..errors import FundflowError
from .normalize import normalize

SEPARATOR = "\x1f"
MIN_SECRET_BYTES = 32
KEY_SUFFIX = ".key"
_KEY_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_CHECK_LABEL = b"fundflow indicator key check v1"


class ConsortiumKeyError(FundflowError):
    """A consortium key file is missing or unusable; the message names the file."""


@dataclass(frozen=True)
class ConsortiumKey:
    key_id: str
    secret: bytes = b""

    def __repr__(self) -> str:                # never print the secret
        return f"ConsortiumKey({self.key_id!r})"

    def digest(self, kind: str, normalized: str) -> str:
        return hmac.digest(self.secret, f"{kind}{SEPARATOR}{normalized}".encode(), "sha256").hex()

    def hash_identifier(self, kind: str, raw: str) -> str:
        """Normalize then hash; `normalize.Refused` when the value is no identifier of that type."""
        return self.digest(kind, normalize(kind, raw))

    @property
    def check(self) -> str:
        """A value that says which secret this is without revealing it (HMAC of a fixed label, 16 hex)."""
        return hmac.new(self.secret, _CHECK_LABEL, hashlib.sha256).hexdigest()[:16]


def valid_key_id(key_id: str) -> bool:
    return bool(_KEY_ID.match(key_id))


def read_key(path: Path) -> ConsortiumKey:
    key_id = path.name[:-len(KEY_SUFFIX)] if path.name.endswith(KEY_SUFFIX) else path.name
    if not valid_key_id(key_id):
        raise ConsortiumKeyError(f"{path}: key id {key_id!r} must be letters, digits, . _ - (at most 64)")
    try:
        content = path.read_bytes()
    except OSError as exc:
        raise ConsortiumKeyError(f"{path}: cannot read consortium key ({exc.strerror})") from None
    text = content.strip()
    secret = content
    if text and all(chr(b) in "0123456789abcdefABCDEF" for b in text):
        secret = bytes.fromhex(text.decode()) if len(text) % 2 == 0 else content
    if len(secret) < MIN_SECRET_BYTES:
        raise ConsortiumKeyError(f"{path}: a consortium key needs at least {MIN_SECRET_BYTES} bytes of secret "
                        f"({2 * MIN_SECRET_BYTES} hex characters), got {len(secret)}")
    return ConsortiumKey(key_id, secret)


def load_keys(directory: str | Path | None) -> dict[str, ConsortiumKey]:
    """Every `<key_id>.key` of the directory; {} when no directory is configured."""
    if directory is None:
        return {}
    root = Path(directory)
    if not root.is_dir():
        raise ConsortiumKeyError(f"indicator_keys {str(root)!r}: no such directory of consortium keys (<key_id>.key files)")
    return {key.key_id: key for key in (read_key(p) for p in sorted(root.glob(f"*{KEY_SUFFIX}")) if p.is_file())}


def pick(keys: Mapping[str, ConsortiumKey], key_ids: Iterable[str]) -> list[ConsortiumKey]:
    chosen = []
    for key_id in key_ids:
        if key_id not in keys:
            known = ", ".join(sorted(keys)) or "none"
            raise ConsortiumKeyError(f"consortium key {key_id!r} is not in the indicator_keys directory (it holds: {known})")
        chosen.append(keys[key_id])
    return chosen
