"""The ports the service drives: a store of jobs and a payment processor."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from payretry.domain.models import Job, JobState
from payretry.domain.policy import Decision


@dataclass(frozen=True, slots=True)
class AttemptResult:
    """What a processor says of one attempt: success with a reference, or a classified failure."""

    succeeded: bool
    reference: str | None = None
    error_code: str | None = None
    decline_code: str | None = None
    message: str | None = None

    @classmethod
    def success(cls, reference: str | None = None) -> AttemptResult:
        return cls(True, reference=reference)

    @classmethod
    def failure(
        cls, error_code: str, decline_code: str | None = None, message: str | None = None
    ) -> AttemptResult:
        return cls(False, error_code=error_code, decline_code=decline_code, message=message)


class Processor(Protocol):
    """Attempts a job's payment. The same idempotency key must never charge twice."""

    name: str

    def attempt(self, job: Job, idempotency_key: str) -> AttemptResult: ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Claimed:
    """A job claimed under a lease, with the attempt row already written."""

    job: Job
    attempt_number: int
    idempotency_key: str
    lease_token: str


@dataclass(frozen=True, slots=True)
class Finish:
    claimed: Claimed
    result: AttemptResult
    decision: Decision
    finished_at: datetime


@dataclass(frozen=True, slots=True)
class Stats:
    total: int
    by_state: Mapping[str, int]
    pending_amount_minor: Mapping[str, int]
    by_error_code: Mapping[str, int]
    attempts_by_outcome: Mapping[str, int]
    success_by_attempt: Mapping[int, tuple[int, int]]  # number -> (succeeded, finished attempts)
    due_now: int
    due_next_hour: int
    oldest_due_at: datetime | None
    jobs_finished: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class WorkerBeat:
    name: str
    kind: str
    started_at: datetime
    beat_at: datetime
    interval: timedelta


class Store(Protocol):
    def insert(self, job: Job) -> Job:
        """Insert one job; raises DuplicateActive when another job is active for its transaction."""
        ...

    def insert_many(self, jobs: Sequence[Job]) -> None: ...

    def get(self, job_id: str, *, with_attempts: bool = True) -> Job | None: ...

    def find(self, transaction_id: str) -> Job | None:
        """The active job for a transaction, or else its most recent one."""
        ...

    def active_for(self, transaction_ids: Sequence[str]) -> dict[str, Job]: ...

    def succeeded_for(self, transaction_ids: Sequence[str]) -> set[str]: ...

    def list_jobs(
        self,
        *,
        state: JobState | None = None,
        user_id: str | None = None,
        due_at: datetime | None = None,
        limit: int = 100,
    ) -> list[Job]: ...

    def cancel(self, job_id: str, now: datetime, reason: str) -> Job: ...

    def rescue(self, now: datetime) -> int:
        """Return jobs whose lease expired to `scheduled`, counting no attempt."""
        ...

    def abandon_expired(self, now: datetime) -> list[Job]:
        """Scheduled jobs whose payment window has closed become `abandoned`."""
        ...

    def claim(
        self, now: datetime, limit: int, lease_for: timedelta, *, job_id: str | None = None
    ) -> list[Claimed]: ...

    def finish(self, finishes: Sequence[Finish]) -> list[bool]:
        """Record outcomes, each fenced by its lease token; False where the lease was lost."""
        ...

    def extend_leases(self, claimed: Sequence[Claimed], until: datetime) -> int:
        """Push the lease of jobs still held under their tokens (the heartbeat)."""
        ...

    def release(self, claimed: Sequence[Claimed], now: datetime) -> int: ...

    def due_preview(self, now: datetime, limit: int) -> list[Job]: ...

    def stats(self, now: datetime) -> Stats: ...

    def oldest_due(self, now: datetime) -> datetime | None: ...

    def purge(self, before: datetime, *, dry_run: bool = False) -> int:
        """Remove final jobs (and their attempts) last changed before `before`."""
        ...

    def beat(self, name: str, kind: str, interval: timedelta, now: datetime) -> None: ...

    def forget_worker(self, name: str) -> None: ...

    def workers(self) -> list[WorkerBeat]: ...

    def close(self) -> None: ...


class DuplicateActive(Exception):
    """Another job is already active for this transaction (raised by a store's insert)."""
