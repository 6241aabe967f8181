"""Who is asking: bearer tokens (or the same token given once on the login page and kept in a cookie), two
roles, and CSRF protection for state changes made from a browser.

Tokens come from the settings: `console_tokens` (`NAME:ROLE:TOKEN`, several separated by commas) and
`console_tokens_file` (one `NAME:ROLE:TOKEN` a line, `#` comments). Roles: `analyst` labels, `supervisor`
also reassigns and reopens. Tokens are compared in constant time. A request with a bearer header is not
open to CSRF (a browser never adds that header by itself); a request authenticated by the cookie must carry
the CSRF token derived from its session token (an HMAC, so nothing is stored) in a form field or the
`X-CSRF-Token` header, and the cookie is `HttpOnly; SameSite=Strict`.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from pathlib import Path

from ..errors import SettingsError

ROLES = ("analyst", "supervisor")
COOKIE = "fundflow_console"
MIN_TOKEN_CHARS = 16


@dataclass(frozen=True)
class User:
    name: str
    role: str
    token: str

    @property
    def is_supervisor(self) -> bool:
        return self.role == "supervisor"


def parse_tokens(text: str, *, source: str) -> list[User]:
    users = []
    for number, raw in enumerate(text.replace(",", "\n").splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split(":", 2)
        if len(parts) != 3 or not parts[0].strip() or parts[1].strip() not in ROLES:
            raise SettingsError(f"{source}: entry {number}: expected NAME:ROLE:TOKEN with ROLE one of "
                                f"{', '.join(ROLES)}")
        name, role, token = (part.strip() for part in parts)
        if len(token) < MIN_TOKEN_CHARS:
            raise SettingsError(f"{source}: entry {number} ({name}): a token of at least {MIN_TOKEN_CHARS} "
                                f"characters is required")
        users.append(User(name, role, token))
    return users


class Tokens:
    def __init__(self, users: list[User]) -> None:
        self.users = users

    @classmethod
    def from_settings(cls, tokens: str | None, tokens_file: str | None) -> "Tokens":
        users = parse_tokens(tokens, source="console_tokens") if tokens else []
        if tokens_file:
            try:
                text = Path(tokens_file).read_text(encoding="utf-8")
            except OSError as exc:
                raise SettingsError(f"console_tokens_file: cannot read {tokens_file} ({exc.strerror})") from None
            users += parse_tokens(text, source=tokens_file)
        return cls(users)

    def find(self, token: str | None) -> User | None:
        if not token:
            return None
        found = None
        for user in self.users:                 # every token compared, in constant time each
            if hmac.compare_digest(user.token.encode(), token.encode()):
                found = user
        return found


def csrf_token(session_token: str) -> str:
    return hmac.new(session_token.encode(), b"fundflow-console-csrf", hashlib.sha256).hexdigest()


def csrf_ok(session_token: str, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(csrf_token(session_token), given)
