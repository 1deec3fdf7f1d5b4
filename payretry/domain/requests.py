"""The ports behind the HTTP edge's guarantees: stored responses for idempotency keys, the
retry-request throttle's counters, the first attempt of a payment processed through the API,
and the reads the API needs that the job store does not offer. Pure records and protocols."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from payretry.domain.models import Job

# -- idempotency keys --------------------------------------------------------------------------


class ClaimState(StrEnum):
    CLAIMED = "claimed"  # the key is ours: run the request, then complete it
    REPLAY = "replay"  # the first request finished: answer with its stored response
    MISMATCH = "mismatch"  # the key was used with another request (method, path or body)
    RUNNING = "running"  # the first request with this key is still running


@dataclass(frozen=True, slots=True)
class StoredResponse:
    status: int
    body: bytes
    content_type: str


@dataclass(frozen=True, slots=True)
class KeyClaim:
    state: ClaimState
    token: str | None = None  # fences the completion of a claimed key
    response: StoredResponse | None = None


class IdempotencyStore(Protocol):
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
        """Claim `key` in its own committed transaction (one winner across processes). A key
        older than `keep_for` is free again; a claim whose request died is taken over once its
        lease (`lease_for`) has run out."""
        ...

    def complete_key(
        self, scope: str, key: str, token: str, response: StoredResponse, now: datetime
    ) -> bool: ...

    def release_key(self, scope: str, key: str, token: str) -> None:
        """Forget a claim whose request stored nothing (a 5xx, a crash): the client may retry."""
        ...

    def purge_keys(self, before: datetime) -> int: ...


# -- the retry-request throttle ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Limit:
    """At most `count` requests per `window` for one bucket ("txn:<id>", "user:<id>")."""

    bucket: str
    count: int
    window: timedelta


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    retry_after: timedelta = timedelta(0)
    bucket: str | None = None  # the bucket that refused


class ThrottleStore(Protocol):
    def take(self, limits: Sequence[Limit], now: datetime) -> Verdict:
        """Count one request against every limit, or against none if any is full: tested and
        counted in one transaction, so concurrent requests (other processes) cannot both pass."""
        ...

    def peek(self, limits: Sequence[Limit], now: datetime) -> Verdict:
        """What `take` would answer now, counting nothing (a page showing the wait)."""
        ...


# -- the first attempt of POST /api/payments/process ------------------------------------------


@dataclass(frozen=True, slots=True)
class FirstAttempt:
    """A payment's first attempt, recorded before the processor is called. One per transaction:
    the row fixes the job id and so the attempt's key (`payretry:<job id>:0`); a request that
    finds it re-sends that same key, so a crash between the charge and the record never
    charges twice."""

    transaction_id: str
    job_id: str
    idempotency_key: str
    request: Mapping[str, Any]  # the validated request, JSON-ready: what a re-send must repeat
    started_at: datetime
    lease_expires_at: datetime | None = None
    outcome: str | None = None  # None while pending; succeeded or failed
    result: Mapping[str, Any] | None = None  # the processor's answer, JSON-ready
    finished_at: datetime | None = None
    queued: bool = False  # a retry job was queued for it (under `job_id`)

    @property
    def pending(self) -> bool:
        return self.outcome is None


class FirstAttemptStore(Protocol):
    def start_first(self, attempt: FirstAttempt, lease_for: timedelta) -> FirstAttempt | None:
        """Record a new first attempt; None when the transaction already has one."""
        ...

    def first_attempt(self, transaction_id: str) -> FirstAttempt | None: ...

    def lease_first(
        self, transaction_id: str, now: datetime, lease_for: timedelta
    ) -> FirstAttempt | None:
        """Take over a pending first attempt whose lease ran out (its request died)."""
        ...

    def unlease_first(self, transaction_id: str) -> None:
        """A pending first attempt may be sent again at once (its outcome was not known)."""
        ...

    def finish_first(self, attempt: FirstAttempt) -> None: ...

    def mark_queued(self, transaction_id: str) -> None: ...


# -- reads for the API --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class JobPage:
    jobs: Sequence[Job]
    next_cursor: str | None


class JobLookups(Protocol):
    def jobs_for_user(self, user_id: str, *, after: str | None, limit: int) -> JobPage:
        """A user's jobs, newest first, a page of `limit` (at least 1) at a time (`after` is
        the previous page's `next_cursor`); InvalidInput naming `limit` or `cursor` else."""
        ...

    def find_by_session(self, session_id: str) -> Job | None:
        """The job of a Checkout Session: the original one it was queued with, or the one it
        now waits on."""
        ...

    def ping(self) -> None:
        """Raise StoreError unless the database answers."""
        ...
