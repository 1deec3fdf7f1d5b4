"""The two questions tests ask the policy most, in the words they used before `decide` was one
path: the first retry of a new job, and what follows a failed attempt."""

from __future__ import annotations

from datetime import datetime

from payretry.domain.models import Job, JobState
from payretry.domain.money import Money
from payretry.domain.policy import Decision, RetryPolicy
from payretry.domain.results import AttemptResult


def job_of(
    job_id: str,
    error_code: str,
    decline_code: str | None,
    expires_at: datetime | None,
    *,
    max_attempts: int = 0,
    now: datetime,
) -> Job:
    return Job(
        id=job_id,
        transaction_id=f"txn-{job_id}",
        user_id="u",
        money=Money(1000, "USD"),
        error_code=error_code,
        decline_code=decline_code,
        error_message=None,
        state=JobState.SCHEDULED,
        attempt_count=0,
        max_attempts=max_attempts,
        next_retry_at=None,
        created_at=now,
        updated_at=now,
        expires_at=expires_at,
        priority=0,
    )


def first_retry(
    policy: RetryPolicy,
    *,
    job_id: str,
    error_code: str,
    decline_code: str | None,
    now: datetime,
    expires_at: datetime | None,
) -> Decision:
    job = job_of(job_id, error_code, decline_code, expires_at, now=now)
    return policy.decide(job, 0, AttemptResult.queued_after(job), now)


def after_failure(
    policy: RetryPolicy,
    *,
    job_id: str,
    attempt_number: int,
    max_attempts: int,
    error_code: str,
    decline_code: str | None,
    now: datetime,
    expires_at: datetime | None,
) -> Decision:
    job = job_of(job_id, "processing_error", None, expires_at, max_attempts=max_attempts, now=now)
    return policy.decide(job, attempt_number, AttemptResult.failure(error_code, decline_code), now)
