"""Idempotency-Key: the first response to a key is stored with a fingerprint of its request and
replayed for `keep_for` (24 h); the same key with another request is refused; the same key
while its first request still runs is refused too. Claims are rows committed before the request
runs, so the rules hold across processes sharing one database."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from datetime import datetime, timedelta

from payretry.domain.requests import IdempotencyStore, KeyClaim, StoredResponse
from payretry.errors import InvalidInput

Clock = Callable[[], datetime]
HEADER = "Idempotency-Key"
_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")  # printable ASCII, no spaces


def fingerprint(method: str, path: str, body: bytes) -> str:
    """What makes two requests the same one: method, path and the exact body."""
    digest = hashlib.sha256()
    for part in (method.upper().encode(), path.encode(), body):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def check_key(key: str) -> str:
    if not _KEY.match(key):
        raise InvalidInput("must be 1 to 255 printable ASCII characters, no spaces", field=HEADER)
    return key


class IdempotencyKeys:
    def __init__(
        self,
        store: IdempotencyStore,
        clock: Clock,
        *,
        keep_for: timedelta = timedelta(hours=24),
        lease_for: timedelta = timedelta(minutes=5),
    ) -> None:
        self.store = store
        self.clock = clock
        self.keep_for = keep_for
        self.lease_for = lease_for

    def claim(self, scope: str, key: str, method: str, path: str, body: bytes) -> KeyClaim:
        return self.store.claim_key(
            scope,
            check_key(key),
            fingerprint(method, path, body),
            self.clock(),
            keep_for=self.keep_for,
            lease_for=self.lease_for,
        )

    def complete(self, scope: str, key: str, token: str, response: StoredResponse) -> bool:
        return self.store.complete_key(scope, key, token, response, self.clock())

    def release(self, scope: str, key: str, token: str) -> None:
        self.store.release_key(scope, key, token)

    def purge(self) -> int:
        return self.store.purge_keys(self.clock() - self.keep_for)
