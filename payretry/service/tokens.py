"""API tokens: minted once, stored only as a keyed hash, checked in constant time.

A token is `prt_<id>_<secret>`: the id (public, 12 hex digits) finds the row, the secret (32
random bytes) proves possession. The row holds HMAC-SHA256(key, token) with the server's
`[http] token_secret` as the key, never the token. A keyed SHA-256 rather than argon2: argon2's
deliberate slowness protects low-entropy passwords from guessing, but a 256-bit random secret
cannot be guessed at any speed, and a slow hash on every request would cost each API call tens
of milliseconds of CPU. The key adds what argon2 could not: a copy of the database alone does
not let anyone check a candidate token.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from payretry.domain.access import ApiToken, Role, TokenStore
from payretry.domain.durations import iso
from payretry.domain.validation import validate_id
from payretry.errors import InvalidInput, NotFound

Clock = Callable[[], datetime]
PREFIX = "prt"
_FORMAT = re.compile(r"^prt_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
_NAME = re.compile(r"^[A-Za-z0-9_.:@ -]{1,100}$")
_DUMMY = "0" * 64


def token_dict(token: ApiToken) -> dict[str, Any]:
    """A token as `token list --json` and GET /api/tokens show it (never its hash)."""
    return {
        "id": token.id,
        "name": token.name,
        "role": token.role.value,
        "transaction_id": token.transaction_id,
        "created_at": iso(token.created_at),
        "expires_at": iso(token.expires_at),
        "revoked_at": iso(token.revoked_at),
    }


def parse_role(value: str) -> Role:
    try:
        return Role(value)
    except ValueError:
        known = ", ".join(role.value for role in Role)
        raise InvalidInput(f"{value!r} is not a role (known: {known})", field="role") from None


class Tokens:
    def __init__(self, store: TokenStore, secret: str | None, clock: Clock) -> None:
        self.store = store
        self.key = (secret or "").encode()
        self.clock = clock

    @property
    def keyed(self) -> bool:
        return bool(self.key)

    def _hash(self, token: str) -> str:
        return hmac.new(self.key, token.encode(), hashlib.sha256).hexdigest()

    def create(
        self,
        role: Role,
        name: str,
        *,
        transaction_id: str | None = None,
        ttl: timedelta | None = None,
    ) -> tuple[str, ApiToken]:
        """Mint a token; the text is returned once and never stored."""
        if not _NAME.match(name):
            raise InvalidInput(
                "must be 1 to 100 letters, digits, spaces or _ . : @ -", field="name"
            )
        if role is Role.CUSTOMER:
            transaction_id = validate_id(transaction_id, "transaction_id")
            if ttl is None:
                raise InvalidInput("a customer token needs a lifetime", field="ttl")
        elif transaction_id is not None:
            raise InvalidInput("only customer tokens are scoped to a transaction", field="role")
        if ttl is not None and ttl <= timedelta(0):
            raise InvalidInput("must be longer than zero", field="ttl")
        now = self.clock()
        token_id = secrets.token_hex(6)
        text = f"{PREFIX}_{token_id}_{secrets.token_urlsafe(32)}"
        record = ApiToken(
            id=token_id,
            name=name,
            role=role,
            secret_hash=self._hash(text),
            created_at=now,
            expires_at=now + ttl if ttl is not None else None,
            transaction_id=transaction_id,
        )
        self.store.add_token(record)
        return text, record

    def authenticate(self, text: str) -> ApiToken | None:
        """The active token `text` is, or None (malformed, unknown, wrong, revoked, expired).
        The hash is compared in constant time, and computed for unknown ids too."""
        match = _FORMAT.match(text)
        if match is None:
            return None
        found = self.store.token(match.group(1))
        candidate = self._hash(text)
        if not hmac.compare_digest(candidate, found.secret_hash if found else _DUMMY):
            return None
        if found is None or not found.active(self.clock()):
            return None
        return found

    def list(self) -> Sequence[ApiToken]:
        return self.store.tokens()

    def revoke(self, token_id: str) -> ApiToken:
        revoked = self.store.revoke_token(token_id, self.clock())
        if revoked is None:
            raise NotFound(f"no token {token_id}")
        return revoked
