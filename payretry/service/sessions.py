"""Page sessions: what the browser keeps after a login (the dashboard) or after opening a
customer link, and the CSRF tokens of the pages' forms. Standard library only.

A session is `<token id>.<expiry>.<mac>`: the API token it was opened with (by its public id,
never its secret), when it ends (Unix seconds), and HMAC-SHA256 over both and the session's
scope (`admin`, or `pay:<transaction id>`) under a key derived from `[http] token_secret`. Each
request checks the MAC (constant time), the expiry and the token itself (still there, not
revoked, not expired), so revoking a token ends its sessions at once.

CSRF: each browser gets a random `csrf` cookie; every form carries HMAC(key, "csrf:" + cookie)
and a POST whose field does not match is refused (the cookie is SameSite=Strict too).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from payretry.domain.access import ApiToken, Role, TokenStore

Clock = Callable[[], datetime]
_LABEL = b"payretry pages v1"


class PageSessions:
    def __init__(self, store: TokenStore, secret: str | None, clock: Clock, ttl: timedelta):
        self.store = store
        self.key = hmac.new((secret or "").encode(), _LABEL, hashlib.sha256).digest()
        self.keyed = bool(secret)
        self.clock = clock
        self.ttl = ttl

    def _mac(self, text: str) -> str:
        return hmac.new(self.key, text.encode(), hashlib.sha256).hexdigest()

    def open(self, token: ApiToken, scope: str) -> tuple[str, datetime]:
        """A session for `token` in `scope`, and when it ends (the token's own expiry if
        sooner than the session lifetime)."""
        ends = self.clock() + self.ttl
        if token.expires_at is not None and token.expires_at < ends:
            ends = token.expires_at
        stamp = int(ends.timestamp())
        value = f"{token.id}.{stamp}.{self._mac(f'{scope}:{token.id}:{stamp}')}"
        return value, datetime.fromtimestamp(stamp, UTC)

    def check(self, value: str | None, scope: str) -> ApiToken | None:
        """The token behind a session value, or None (malformed, forged, expired, revoked)."""
        if not value or not self.keyed or len(value) > 200:
            return None
        parts = value.split(".")
        if len(parts) != 3 or not parts[1].isdigit():
            return None
        token_id, stamp, mac = parts
        if not hmac.compare_digest(mac, self._mac(f"{scope}:{token_id}:{stamp}")):
            return None
        now = self.clock()
        if now.timestamp() >= int(stamp):
            return None
        token = self.store.token(token_id)
        if token is None or not token.active(now):
            return None
        return token

    @staticmethod
    def new_csrf_cookie() -> str:
        return secrets.token_urlsafe(24)

    def csrf_token(self, cookie: str) -> str:
        return self._mac(f"csrf:{cookie}")

    def csrf_ok(self, cookie: str | None, field: str | None) -> bool:
        if not cookie or not field or not self.keyed:
            return False
        return hmac.compare_digest(self.csrf_token(cookie), field)


def may_act(token: ApiToken) -> bool:
    """Whether a dashboard user may cancel and retry (operator or admin)."""
    return token.role.allows(Role.OPERATOR)


def may_look(token: ApiToken) -> bool:
    """Whether a token may log in to the dashboard (viewer, operator, admin; not customer)."""
    return token.role is not Role.CUSTOMER and token.role.allows(Role.VIEWER)
