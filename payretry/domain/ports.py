"""The ports the service drives: a store of jobs and a payment processor."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from payretry.domain.models import AttemptOutcome, CustomerAction, Job, JobState
from payretry.domain.policy import Decision


@dataclass(frozen=True, slots=True)
class AttemptResult:
    """What a processor says of one attempt: success with a reference, or a classified failure,
    or (checkout) an action the customer must complete before the attempt has an outcome.

    `retry_after`: the processor asks the whole run to slow down (it answered 429).
    `notify`: a message for the customer (update the card, authenticate, complete checkout).
    """

    succeeded: bool
    reference: str | None = None
    error_code: str | None = None
    decline_code: str | None = None
    message: str | None = None
    retry_after: float | None = None
    notify: str | None = None
    action: CustomerAction | None = None

    @property
    def awaiting(self) -> bool:
        return self.action is not None

    @classmethod
    def success(cls, reference: str | None = None, message: str | None = None) -> AttemptResult:
        return cls(True, reference=reference, message=message)

    @classmethod
    def failure(
        cls,
        error_code: str,
        decline_code: str | None = None,
        message: str | None = None,
        *,
        reference: str | None = None,
        retry_after: float | None = None,
        notify: str | None = None,
    ) -> AttemptResult:
        return cls(
            False,
            reference=reference,
            error_code=error_code,
            decline_code=decline_code,
            message=message,
            retry_after=retry_after,
            notify=notify,
        )

    @classmethod
    def awaiting_customer(
        cls, action: CustomerAction, notify: str, message: str | None = None
    ) -> AttemptResult:
        return cls(False, reference=action.ref, message=message, notify=notify, action=action)


class AttemptInDoubt(Exception):
    """The request may or may not have reached the processor (a connection error, a timeout, a
    concurrent request under the same key). The attempt keeps its pending row and its lease
    lapses: the rescue returns the job and the same idempotency key is sent again."""

    def __init__(self, error_code: str, message: str) -> None:
        super().__init__(message)
        self.error_code = error_code
        self.message = message


class Processor(Protocol):
    """Attempts a job's payment. The same idempotency key must never charge twice."""

    name: str

    def attempt(self, job: Job, idempotency_key: str) -> AttemptResult: ...

    def close(self) -> None: ...


class CustomerActions(Protocol):
    """A processor whose attempts can wait on the customer (Checkout). `needs_history` asks the
    runner to hand it each job with its attempts (to resolve earlier unsettled ones)."""

    needs_history: bool

    def check_action(self, job: Job) -> AttemptResult | None:
        """The outcome of the customer's action, or None while it is still open."""
        ...


@dataclass(frozen=True, slots=True)
class Claimed:
    """A job claimed under a lease, with the attempt row already written."""

    job: Job
    attempt_number: int
    idempotency_key: str
    lease_token: str

    @property
    def sent_before(self) -> datetime | None:
        """When an earlier run first sent this attempt (its row was left pending: a crash, a
        lost connection), or None for a new attempt. Known only when `job.attempts` is loaded:
        a claim writes a new attempt row with `started_at` equal to the job's `updated_at`."""
        for attempt in self.job.attempts:
            if (
                attempt.number == self.attempt_number
                and attempt.outcome is AttemptOutcome.PENDING
                and attempt.started_at < self.job.updated_at
            ):
                return attempt.started_at
        return None


@dataclass(frozen=True, slots=True)
class Finish:
    claimed: Claimed
    result: AttemptResult
    decision: Decision
    finished_at: datetime


@dataclass(frozen=True, slots=True)
class Settlement:
    """The end of an attempt that waited on the customer (awaiting_payer)."""

    job: Job
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

    def awaiting(self, *, after_seq: int = 0, limit: int = 200) -> list[Job]:
        """Jobs waiting on the customer (awaiting_payer), in queue order after `after_seq`."""
        ...

    def settle_awaiting(self, settlements: Sequence[Settlement]) -> list[bool]:
        """Record how customer actions ended, each fenced by the job still awaiting that
        attempt; False where another runner settled it first."""
        ...

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
