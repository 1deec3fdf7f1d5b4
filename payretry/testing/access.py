"""The HTTP API's tokens and the retry-request throttle, in memory: the twins of SqlTokens and
SqlThrottle (payretry/store/access.py), with the same rules.

- MemoryTokens: tokens by id, listed newest first (then by id); a revoked token keeps its row
  and its first revocation time; adding an id twice is refused.
- MemoryThrottle: a fixed window per bucket that starts with the request that made its row;
  a request is tested against every limit and counted in all or none, under one lock, so two
  threads cannot both take the last slot. A `now` before a window's start counts in that window.

Thread-safe: each call holds the twin's lock. Times in and out are aware UTC.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from payretry.domain.access import ApiToken
from payretry.domain.requests import Limit, Verdict
from payretry.errors import StoreError
from payretry.testing._base import aware


def _stored(token: ApiToken) -> ApiToken:
    return replace(
        token,
        created_at=aware(token.created_at),
        expires_at=None if token.expires_at is None else aware(token.expires_at),
        revoked_at=None if token.revoked_at is None else aware(token.revoked_at),
    )


class MemoryTokens:
    """The TokenStore port in memory."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens: dict[str, ApiToken] = {}

    def add_token(self, token: ApiToken) -> None:
        stored = _stored(token)
        with self._lock:
            if token.id in self._tokens:  # the SQL store's primary key refuses it too
                raise StoreError(f"memory store: a token {token.id} exists already")
            self._tokens[token.id] = stored

    def token(self, token_id: str) -> ApiToken | None:
        with self._lock:
            return self._tokens.get(token_id)

    def tokens(self) -> Sequence[ApiToken]:
        with self._lock:
            found = list(self._tokens.values())
        found.sort(key=lambda t: t.id)
        found.sort(key=lambda t: t.created_at, reverse=True)  # stable: ties stay by id
        return found

    def revoke_token(self, token_id: str, now: datetime) -> ApiToken | None:
        at = aware(now)
        with self._lock:
            token = self._tokens.get(token_id)
            if token is None:
                return None
            if token.revoked_at is None:
                token = self._tokens[token_id] = replace(token, revoked_at=at)
            return token


@dataclass
class _Window:
    start: datetime
    count: int


class MemoryThrottle:
    """The ThrottleStore port in memory."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._windows: dict[str, _Window] = {}

    def take(self, limits: Sequence[Limit], now: datetime) -> Verdict:
        if not limits:
            return Verdict(True)
        now = aware(now)
        ordered = sorted(limits, key=lambda limit: limit.bucket)
        with self._lock:
            for limit in ordered:  # a bucket's row is made by its first request, counted or not
                self._windows.setdefault(limit.bucket, _Window(now, 0))
            counts: list[tuple[str, datetime, int]] = []
            for limit in ordered:
                row = self._windows[limit.bucket]
                start, count = row.start, row.count
                if now >= start + limit.window:
                    start, count = now, 0  # a new window
                if count >= limit.count:
                    return Verdict(
                        False, max(start + limit.window - now, timedelta(0)), limit.bucket
                    )
                counts.append((limit.bucket, start, count + 1))
            for bucket, start, count in counts:
                self._windows[bucket] = _Window(start, count)
        return Verdict(True)

    def peek(self, limits: Sequence[Limit], now: datetime) -> Verdict:
        if not limits:
            return Verdict(True)
        now = aware(now)
        by_bucket = {limit.bucket: limit for limit in limits}
        with self._lock:
            rows = {b: self._windows[b] for b in by_bucket if b in self._windows}
            for bucket in sorted(rows):
                limit, row = by_bucket[bucket], rows[bucket]
                ends = row.start + limit.window
                if now < ends and row.count >= limit.count:
                    return Verdict(False, ends - now, bucket)
        return Verdict(True)
