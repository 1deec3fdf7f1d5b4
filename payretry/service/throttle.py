"""The retry-request throttle: customer- and operator-initiated retries now (the API's
`POST /payments/retry/{id}` and `payretry retry`) are limited per transaction and per user,
counted in the database so every process and replica shares the counts.

Only retries that would be attempted are counted: a request refused by the job's state (final,
waiting on the customer, no attempts left) is answered without spending the allowance.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from payretry.domain.durations import format_duration
from payretry.domain.models import Job, JobState
from payretry.domain.outcomes import JobResult
from payretry.domain.requests import Limit, ThrottleStore
from payretry.errors import Refused, Throttled
from payretry.service.operations import Operations


class RetryThrottle:
    def __init__(
        self,
        store: ThrottleStore,
        *,
        per_transaction: int,
        transaction_window: timedelta,
        per_user: int,
        user_window: timedelta,
    ) -> None:
        self.store = store
        self.per_transaction = (per_transaction, transaction_window)
        self.per_user = (per_user, user_window)

    def limits(self, job: Job) -> list[Limit]:
        limits = []
        count, window = self.per_transaction
        if count:
            limits.append(Limit(f"txn:{job.transaction_id}", count, window))
        count, window = self.per_user
        if count:
            limits.append(Limit(f"user:{job.user_id}", count, window))
        return limits

    def take(self, job: Job, now: datetime) -> None:
        """Count one retry of `job`, or raise Throttled with the seconds to wait."""
        verdict = self.store.take(self.limits(job), now)
        if verdict.allowed:
            return
        wait = max(1, int(-(-verdict.retry_after.total_seconds() // 1)))  # whole seconds, up
        if verdict.bucket and verdict.bucket.startswith("txn:"):
            count, window = self.per_transaction
            what = f"transaction {job.transaction_id}"
        else:
            count, window = self.per_user
            what = f"user {job.user_id}"
        raise Throttled(
            f"too many retries for {what} (at most {count} per {_window(window)}); "
            f"try again in {wait}s",
            retry_after=wait,
        )

    def wait(self, job: Job, now: datetime) -> timedelta | None:
        """How long a retry of `job` would be held now (None: it would pass); counts nothing."""
        verdict = self.store.peek(self.limits(job), now)
        return None if verdict.allowed else verdict.retry_after


def _window(window: timedelta) -> str:
    return format_duration(window)


def refusal(job: Job) -> Refused | None:
    """Why a retry of `job` now would be refused by its state, before anything is counted (the
    same checks `Operations.retry_now` makes first)."""
    if job.state.final:
        return Refused(f"job for {job.transaction_id} is already {job.state.value}")
    if job.state is JobState.AWAITING_PAYER:
        ref = job.action.ref if job.action else "?"
        return Refused(
            f"the customer has checkout session {ref} open for {job.transaction_id}; "
            "it is checked on every run"
        )
    if job.attempts_remaining <= 0:
        return Refused(f"no attempts left for {job.transaction_id}")
    return None


class RetryRequests:
    """A retry now as the customer or an operator asks for it: looked up, checked against its
    state, throttled, then attempted through `Operations.retry_now`."""

    def __init__(self, operations: Operations, throttle: RetryThrottle) -> None:
        self.operations = operations
        self.throttle = throttle

    def retry(self, job: Job, now: datetime) -> JobResult:
        refused = refusal(job)
        if refused is not None:
            raise refused
        self.throttle.take(job, now)
        return self.operations.retry_now(job.transaction_id, now)
