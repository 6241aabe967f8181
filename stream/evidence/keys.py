"""The Ed25519 key that signs checkpoints: loaded from `evidence_signing_key`, or generated once in data_dir."""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ..errors import FundflowError

log = logging.getLogger(__name__)

DEFAULT_KEY_FILE = Path("evidence") / "signing_key.pem"


class EvidenceKeyError(FundflowError):
    """A signing or public key that cannot be read."""


def default_key_path(data_dir: str | Path) -> Path:
    return Path(data_dir) / DEFAULT_KEY_FILE


def key_path(signing_key: str | None, data_dir: str | Path) -> Path:
    return Path(signing_key) if signing_key else default_key_path(data_dir)


def raw_public(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(public: Ed25519PublicKey) -> str:
    """A short name of the key: the first 16 hex digits of SHA-256 over its 32 raw bytes."""
    return hashlib.sha256(raw_public(public)).hexdigest()[:16]


def public_pem(public: Ed25519PublicKey) -> str:
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def load_public_pem(text: str | bytes) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(text.encode() if isinstance(text, str) else text)
    except (ValueError, TypeError) as exc:
        raise EvidenceKeyError(f"not a PEM public key: {exc}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise EvidenceKeyError(f"expected an Ed25519 public key, got {type(key).__name__}")
    return key


@dataclass(frozen=True)
class SigningKey:
    private: Ed25519PrivateKey
    path: Path

    @property
    def public(self) -> Ed25519PublicKey:
        return self.private.public_key()

    @property
    def key_id(self) -> str:
        return key_id(self.public)

    def sign(self, message: bytes) -> str:
        return self.private.sign(message).hex()


def load_signing_key(path: Path) -> SigningKey:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise EvidenceKeyError(f"cannot read the evidence signing key {path}: {exc.strerror}") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise EvidenceKeyError(f"{path}: not an unencrypted PEM private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise EvidenceKeyError(f"{path}: expected an Ed25519 private key, got {type(key).__name__}")
    return SigningKey(key, path)


def ensure_signing_key(signing_key: str | None, data_dir: str | Path) -> SigningKey:
    """The configured key; with none configured, the one in data_dir, generated (mode 0600) on first use."""
    path = key_path(signing_key, data_dir)
    if signing_key or path.exists():
        return load_signing_key(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(pem)
    try:
        os.link(temporary, path)       # never replaces a key another process generated meanwhile
    except FileExistsError:
        pass
    finally:
        temporary.unlink(missing_ok=True)
    key = load_signing_key(path)
    log.warning("generated an evidence signing key at %s (key id %s); publish its public key:\n%s", path,
                key.key_id, public_pem(key.public))
    return key


def verify_signature(public: Ed25519PublicKey, signature_hex: str, message: bytes) -> bool:
    try:
        public.verify(bytes.fromhex(signature_hex), message)
    except (InvalidSignature, ValueError):
        return False
    return True
