"""Stored responses of idempotency keys and the first attempts of processed payments, in memory:
the twins of SqlIdempotency and SqlFirstAttempts (payretry/store/requests.py), with the same
rules.

- MemoryIdempotency: one claim per (scope, key) wins; a key older than `keep_for` is free again;
  a claim whose lease ran out (its request died) is taken over under a new token; completing
  and releasing are fenced by the claim's token; a body is stored as text (UTF-8), as in SQL.
- MemoryFirstAttempts: one first attempt per transaction, leased from its start; a lease is
  taken over only once it ran out (or was let go), and only while the outcome is unknown; the
  outcome is written once; the request and the result go through JSON, as in SQL.

Thread-safe: each call holds the twin's lock, as each SQL call is one transaction. Times in and
out are aware UTC.
"""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from payretry.domain.requests import ClaimState, FirstAttempt, KeyClaim, StoredResponse
from payretry.testing._base import aware


@dataclass
class _Key:
    fingerprint: str
    token: str
    created_at: datetime
    lease_expires_at: datetime | None
    response: StoredResponse | None = None
    completed_at: datetime | None = None


class MemoryIdempotency:
    """The IdempotencyStore port in memory."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._keys: dict[tuple[str, str], _Key] = {}

    def claim_key(
        self,
        scope: str,
        key: str,
        fingerprint: str,
        now: datetime,
        *,
        keep_for: timedelta,
        lease_for: timedelta,
    ) -> KeyClaim:
        now = aware(now)
        token = uuid.uuid4().hex
        fresh = _Key(fingerprint, token, now, now + lease_for)
        with self._lock:
            row = self._keys.get((scope, key))
            if row is None or row.created_at + keep_for <= now:  # new, or expired: free
                self._keys[(scope, key)] = fresh
                return KeyClaim(ClaimState.CLAIMED, token)
            if row.fingerprint != fingerprint:
                return KeyClaim(ClaimState.MISMATCH)
            if row.response is not None:
                return KeyClaim(ClaimState.REPLAY, response=row.response)
            if row.lease_expires_at is not None and row.lease_expires_at <= now:
                row.token, row.lease_expires_at = token, now + lease_for  # its request died
                return KeyClaim(ClaimState.CLAIMED, token)
            return KeyClaim(ClaimState.RUNNING)

    def complete_key(
        self, scope: str, key: str, token: str, response: StoredResponse, now: datetime
    ) -> bool:
        stored = StoredResponse(
            response.status,
            response.body.decode().encode(),  # text in SQL: a body that is not UTF-8 fails here too
            response.content_type or "application/json",
        )
        at = aware(now)
        with self._lock:
            row = self._keys.get((scope, key))
            if row is None or row.token != token:
                return False
            row.response, row.completed_at, row.lease_expires_at = stored, at, None
            return True

    def release_key(self, scope: str, key: str, token: str) -> None:
        with self._lock:
            row = self._keys.get((scope, key))
            if row is not None and row.token == token and row.response is None:
                del self._keys[(scope, key)]

    def purge_keys(self, before: datetime) -> int:
        before = aware(before)
        with self._lock:
            old = [k for k, row in self._keys.items() if row.created_at < before]
            for k in old:
                del self._keys[k]
        return len(old)


def _json(value: object) -> Any:
    """What JSON gives back (sorted keys, tuples as lists); refuses what SQL could not store."""
    return json.loads(json.dumps(value, sort_keys=True))


class MemoryFirstAttempts:
    """The FirstAttemptStore port in memory."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: dict[str, FirstAttempt] = {}

    def start_first(self, attempt: FirstAttempt, lease_for: timedelta) -> FirstAttempt | None:
        started = aware(attempt.started_at)
        row = FirstAttempt(
            transaction_id=attempt.transaction_id,
            job_id=attempt.job_id,
            idempotency_key=attempt.idempotency_key,
            request=_json(dict(attempt.request)),
            started_at=started,
            lease_expires_at=started + lease_for,
        )
        with self._lock:
            if attempt.transaction_id in self._rows:
                return None
            self._rows[attempt.transaction_id] = row
        return attempt

    def first_attempt(self, transaction_id: str) -> FirstAttempt | None:
        with self._lock:
            return self._rows.get(transaction_id)

    def lease_first(
        self, transaction_id: str, now: datetime, lease_for: timedelta
    ) -> FirstAttempt | None:
        now = aware(now)
        with self._lock:
            row = self._rows.get(transaction_id)
            if row is None or not row.pending:
                return None
            if row.lease_expires_at is not None and row.lease_expires_at > now:
                return None  # its request is still running
            row = self._rows[transaction_id] = replace(row, lease_expires_at=now + lease_for)
            return row

    def unlease_first(self, transaction_id: str) -> None:
        with self._lock:
            row = self._rows.get(transaction_id)
            if row is not None and row.pending:
                self._rows[transaction_id] = replace(row, lease_expires_at=None)

    def finish_first(self, attempt: FirstAttempt) -> None:
        result = _json(None if attempt.result is None else dict(attempt.result))
        finished = None if attempt.finished_at is None else aware(attempt.finished_at)
        with self._lock:
            row = self._rows.get(attempt.transaction_id)
            if row is None or not row.pending:
                return  # the outcome is written once
            self._rows[attempt.transaction_id] = replace(
                row,
                outcome=attempt.outcome,
                result=result,
                finished_at=finished,
                lease_expires_at=None,
            )

    def mark_queued(self, transaction_id: str) -> None:
        with self._lock:
            row = self._rows.get(transaction_id)
            if row is not None:
                self._rows[transaction_id] = replace(row, queued=True)
