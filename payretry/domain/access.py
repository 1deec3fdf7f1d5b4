"""Who may call the HTTP API: roles, bearer tokens as stored (a hash, never the secret), and
the store port that keeps them. Pure: hashing and the clock stay in the service."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol


class Role(StrEnum):
    VIEWER = "viewer"  # every GET
    OPERATOR = "operator"  # viewer, and queue, cancel, retry now, process
    ADMIN = "admin"  # everything, tokens included
    CUSTOMER = "customer"  # status and retry of one transaction, until the token expires

    def allows(self, needed: Role) -> bool:
        """Whether this role may do what `needed` may (customer tokens are checked apart:
        they are scoped to one transaction, not ranked)."""
        if self is Role.CUSTOMER or needed is Role.CUSTOMER:
            return self is needed
        return _RANK[self] >= _RANK[needed]


_RANK = {Role.VIEWER: 1, Role.OPERATOR: 2, Role.ADMIN: 3}


@dataclass(frozen=True, slots=True)
class ApiToken:
    """A token as stored: its public id, a keyed hash of the whole token, and its scope."""

    id: str
    name: str
    role: Role
    secret_hash: str
    created_at: datetime
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    transaction_id: str | None = None  # customer tokens: the one transaction they may act on

    def active(self, now: datetime) -> bool:
        if self.revoked_at is not None:
            return False
        return self.expires_at is None or now < self.expires_at


class TokenStore(Protocol):
    def add_token(self, token: ApiToken) -> None: ...

    def token(self, token_id: str) -> ApiToken | None: ...

    def tokens(self) -> Sequence[ApiToken]:
        """Every token, newest first."""
        ...

    def revoke_token(self, token_id: str, now: datetime) -> ApiToken | None:
        """Mark the token revoked (kept, for the record); None when there is no such token."""
        ...
