"""Queue, look up, cancel, retry now: the operator's and the application's use cases."""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from payretry.domain.changes import Cancelled, Queued
from payretry.domain.durations import iso
from payretry.domain.models import Job, JobState, NewJob
from payretry.domain.outcomes import JobResult, RunReport
from payretry.domain.policy import Decision, Outcome, RetryPolicy
from payretry.domain.ports import DuplicateActive, Store
from payretry.domain.results import AttemptResult
from payretry.errors import InvalidRows, NotFound, Refused
from payretry.service.execution import Execution
from payretry.service.reporting import Reporter

log = logging.getLogger("payretry")
_TWELVE_DIGITS = re.compile(r"[0-9]{12}")


def new_job_id() -> str:
    """A random hex id never holding 12 digits in a row (about one uuid in twenty does):
    redaction of logs and errors, and card-number scanners, would take the run for a card."""
    while True:
        job_id = uuid.uuid4().hex
        if not _TWELVE_DIGITS.search(job_id):
            return job_id


def _first_decision(policy: RetryPolicy, job: Job, now: datetime) -> Decision:
    if job.expires_at is not None and job.expires_at <= now:
        raise Refused(f"the payment window closed at {iso(job.expires_at)}; nothing queued")
    decision = policy.decide(job, 0, AttemptResult.queued_after(job), now)
    if decision.outcome is Outcome.FAILED:
        raise Refused(f"not retryable: {decision.reason}; nothing queued")
    if decision.outcome is Outcome.ABANDONED:
        raise Refused(f"window too short: {decision.reason}; nothing queued")
    return decision


def _scheduled(job: Job, decision: Decision) -> Job:
    return replace(
        job,
        max_attempts=decision.max_attempts,
        next_retry_at=decision.next_retry_at,
        reason=decision.reason,
        policy_code=decision.row.code,
    )


def _conflict(existing: Job) -> Refused:
    return Refused(
        f"a different job ({existing.id}, {existing.state.value}) is already active for "
        f"transaction {existing.transaction_id}; cancel it first"
    )


@dataclass(frozen=True, slots=True)
class QueueManyResult:
    created: int
    existing: int


class Operations:
    """The operator's and the application's use cases: queue, look up, cancel, retry now.
    `execution` (how an attempt is made) is needed only by `retry_now`."""

    def __init__(
        self, store: Store, policy: RetryPolicy, *, execution: Execution | None = None
    ) -> None:
        self.store = store
        self.policy = policy
        self.execution = execution

    def queue(
        self, request: NewJob, now: datetime, *, job_id: str | None = None
    ) -> tuple[Job, bool]:
        """Queue a retry; (job, created). Idempotent for the same request while active.
        `job_id`: the id the new job must have (a first attempt already fixed it)."""
        existing = self.store.active_for([request.transaction_id]).get(request.transaction_id)
        if existing is not None:
            if request.same_request(existing):
                found = self.store.get(existing.id)
                assert found is not None
                return found, False
            raise _conflict(existing)
        if self.store.succeeded_for([request.transaction_id]):
            raise Refused(
                f"transaction {request.transaction_id} was already paid by an earlier retry; "
                "queueing it again could charge the customer twice"
            )
        draft = request.draft(job_id or new_job_id(), now)
        queued = Queued(_scheduled(draft, _first_decision(self.policy, draft, now)))
        try:
            job = self.store.insert(queued)
        except DuplicateActive:  # a concurrent queue of the same transaction won the race
            winner = self.store.active_for([request.transaction_id]).get(request.transaction_id)
            if winner is not None and request.same_request(winner):
                found = self.store.get(winner.id)
                assert found is not None
                return found, False
            if winner is None:
                raise Refused("a concurrent change to this transaction; try again") from None
            raise _conflict(winner) from None
        log.info(
            "queued retry",
            extra={
                "transaction_id": job.transaction_id,
                "error_code": job.error_code,
                "next_retry_at": iso(job.next_retry_at),
            },
        )
        return job, True

    def queue_many(
        self,
        rows: Sequence[tuple[int, NewJob]],
        now: datetime,
        progress: Callable[[int], None] | None = None,
        invalid: Sequence[tuple[int, str]] = (),
    ) -> QueueManyResult:
        """All or nothing: every row is checked first; any problem and nothing is written.

        `invalid` carries rows that already failed validation, so one report names them all.
        """
        problems: list[tuple[int, str]] = list(invalid)
        refused_only = not invalid
        ids = [r.transaction_id for _, r in rows]
        active = self.store.active_for(ids)
        paid = self.store.succeeded_for(ids)
        seen: dict[str, tuple[int, NewJob]] = {}
        jobs: list[Queued] = []
        existing = 0
        # Without jitter the first decision depends only on the codes and the window, so rows
        # that share them share it (a bulk file has a handful of codes and one "now").
        decisions: dict[tuple[str, str | None, datetime | None], Decision] = {}
        for line, request in rows:
            txn = request.transaction_id
            if txn in seen:
                first_line, first = seen[txn]
                if first == request or first.same_request_as(request):
                    existing += 1
                    continue
                problems.append(
                    (line, f"transaction {txn} also on line {first_line} with different parameters")
                )
                continue
            seen[txn] = (line, request)
            if txn in active:
                if request.same_request(active[txn]):
                    existing += 1
                    continue
                problems.append((line, str(_conflict(active[txn]))))
                continue
            if txn in paid:
                problems.append((line, f"transaction {txn} was already paid by an earlier retry"))
                continue
            draft = request.draft(new_job_id(), now)
            key = (request.error_code, request.decline_code, request.expires_at)
            decision = decisions.get(key) if not self.policy.jitter else None
            if decision is None:
                try:
                    decision = _first_decision(self.policy, draft, now)
                except Refused as exc:
                    problems.append((line, exc.message))
                    continue
                if not self.policy.jitter:
                    decisions[key] = decision
            jobs.append(Queued(_scheduled(draft, decision)))
        if problems:
            raise InvalidRows(sorted(problems), refused_only=refused_only)
        try:
            self.store.insert_many(jobs)
        except DuplicateActive as exc:
            raise Refused(str(exc)) from None
        if progress:
            progress(len(rows))
        return QueueManyResult(created=len(jobs), existing=existing)

    def status(self, transaction_id: str) -> Job:
        job = self.store.find(transaction_id)
        if job is None:
            raise NotFound(f"no retry job for transaction {transaction_id}")
        return job

    def cancel(self, transaction_id: str, now: datetime) -> Job:
        job = self.status(transaction_id)
        if job.state.final:
            raise Refused(f"job for {transaction_id} is already {job.state.value}")
        cancelled = self.store.cancel(Cancelled(job, now, "cancelled by an operator"))
        log.info("cancelled retry", extra={"transaction_id": transaction_id})
        return cancelled

    def retry_now(self, transaction_id: str, now: datetime) -> JobResult:
        """An operator- or customer-initiated retry of one job, now: one attempt counted."""
        if self.execution is None:  # pragma: no cover - wiring builds it for the edges
            raise RuntimeError("retry_now needs an execution")
        job = self.status(transaction_id)
        if job.state.final:
            raise Refused(f"job for {transaction_id} is already {job.state.value}")
        if job.state is JobState.AWAITING_PAYER:
            raise Refused(
                f"the customer has checkout session {job.action.ref if job.action else '?'} "
                f"open for {transaction_id}; run-due checks it"
            )
        if job.attempts_remaining <= 0:
            raise Refused(f"no attempts left for {transaction_id}")
        if job.expires_at is not None and job.expires_at <= now:
            self.store.abandon_expired(now)
            raise Refused(
                f"the payment window for {transaction_id} closed at {iso(job.expires_at)}"
            )
        claimed = self.store.claim(now, 1, self.execution.lease_for, job_id=job.id)
        if not claimed:
            raise Refused(f"an attempt for {transaction_id} is already in progress")
        results: list[JobResult] = []
        self.execution.process(claimed, Reporter(RunReport(), results.append))
        return results[0]
