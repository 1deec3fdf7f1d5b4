"""processPaymentWithRetry (seed 000): a payment's first attempt through the processor now; on
success nothing is queued; on a failure the policy would retry, a retry job is queued under
its policy row; otherwise the payment has failed and nothing is queued.

Never a second charge. The processor idempotency key of the first attempt is derived from the
transaction id, the one thing every request for the payment shares whatever its Idempotency-Key
(a client retrying after a timeout may well send a new one). The first request for a
transaction records, in a transaction of its own committed before the processor is called, a
row keyed by the transaction id that fixes the job id, the key `payretry:<job id>:0` and the
request. Every later request for that transaction, on any replica, finds the row: finished, it
answers from the record and charges nothing; left pending by a crash (the charge may have gone
through), it sends the same key with the same parameters again once the row's lease has run
out, so the processor replays its first answer (Stripe keeps keys 24 h, and the Stripe
processor reconciles older ones through its search by the key). A request with other
parameters for the same transaction is refused.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from payretry.domain.bound import QueueBound
from payretry.domain.durations import iso, parse_time
from payretry.domain.models import Job, JobState, NewJob, ProcessorRefs, attempt_key
from payretry.domain.money import Money
from payretry.domain.policy import Decision, Outcome, RetryPolicy
from payretry.domain.ports import CardLedger, Processor, Store
from payretry.domain.requests import FirstAttempt, FirstAttemptStore
from payretry.domain.results import AttemptInDoubt, AttemptRequest, AttemptResult
from payretry.domain.validation import sanitize_message
from payretry.errors import PayretryError, ProcessorError, Refused
from payretry.service.operations import Operations, new_job_id

Clock = Callable[[], datetime]
# The job a first attempt is made for has no failure yet; its error code is filled in from the
# attempt's result before anything is queued.
PENDING_CODE = "first_attempt"


class InDoubt(PayretryError):
    """The processor gave no answer; the same key is sent again by the next request."""

    exit_code = 1
    kind = "in_doubt"


@dataclass(frozen=True, slots=True)
class Processed:
    transaction_id: str
    attempt: FirstAttempt
    result: AttemptResult
    decision: Decision | None  # None on success
    job: Job | None  # the retry job queued for it
    replayed: bool  # answered from the record: nothing was sent this time

    @property
    def success(self) -> bool:
        return self.result.succeeded

    @property
    def should_retry(self) -> bool:
        return self.decision is not None and self.decision.outcome is Outcome.RETRY


def request_record(request: NewJob) -> dict[str, Any]:
    """The request as the first-attempt row keeps it: what a re-send must repeat exactly."""
    return {
        "transaction_id": request.transaction_id,
        "user_id": request.user_id,
        "amount_minor": request.money.amount_minor,
        "currency": request.money.currency,
        "refs": request.refs.as_dict(),
        "metadata": dict(request.metadata),
        "expires_at": iso(request.expires_at),
        "priority": request.priority,
    }


def request_of(record: Mapping[str, Any]) -> NewJob:
    expires = record.get("expires_at")
    return NewJob(
        transaction_id=record["transaction_id"],
        user_id=record["user_id"],
        money=Money(int(record["amount_minor"]), record["currency"]),
        error_code=PENDING_CODE,
        decline_code=None,
        error_message=None,
        refs=ProcessorRefs(**record["refs"]),
        metadata=dict(record["metadata"]),
        expires_at=parse_time(expires) if expires else None,
        priority=record.get("priority"),
    )


def _result_record(result: AttemptResult) -> dict[str, Any]:
    return {
        "succeeded": result.succeeded,
        "reference": result.reference,
        "error_code": result.error_code,
        "decline_code": result.decline_code,
        "message": sanitize_message(result.message),
        "notify": result.notify,
    }


def _result_of(record: Mapping[str, Any]) -> AttemptResult:
    return AttemptResult(
        bool(record["succeeded"]),
        reference=record.get("reference"),
        error_code=record.get("error_code"),
        decline_code=record.get("decline_code"),
        message=record.get("message"),
        notify=record.get("notify"),
    )


def _draft(request: NewJob, job_id: str, now: datetime) -> Job:
    """The job the first attempt is made for (nothing is stored for it yet)."""
    return replace(
        request.draft(job_id, now),
        error_code=PENDING_CODE,
        decline_code=None,
        error_message=None,
        state=JobState.RUNNING,
    )


class ProcessPayment:
    def __init__(
        self,
        first: FirstAttemptStore,
        store: Store,
        policy: RetryPolicy,
        processor: Processor,
        *,
        clock: Clock,
        lease_for: timedelta,
        ledger: CardLedger | None = None,
        bound: QueueBound | None = None,
    ) -> None:
        self.first = first
        self.store = store
        self.policy = policy
        self.processor = processor
        self.clock = clock
        self.lease_for = lease_for
        # The retry it queues is checked against the card's ledger and held to the queue's
        # bound, as any queue's.
        self.operations = Operations(store, policy, ledger=ledger, bound=bound)

    def process(self, request: NewJob) -> Processed:
        txn = request.transaction_id
        row = self.first.first_attempt(txn)
        if row is None:
            now = self.clock()
            job_id = new_job_id()
            fresh = FirstAttempt(txn, job_id, attempt_key(job_id, 0), request_record(request), now)
            started = self.first.start_first(fresh, self.lease_for)
            if started is not None:
                return self._attempt(started, request, resent=False)
            row = self.first.first_attempt(txn)  # a concurrent request won the race
            assert row is not None
        recorded = request_of(row.request)
        if not request.same_request_as(recorded):
            raise Refused(
                f"transaction {txn} was first processed with other parameters (amount, user, "
                "payment method or metadata); nothing was sent"
            )
        if row.pending:
            leased = self.first.lease_first(txn, self.clock(), self.lease_for)
            if leased is None:
                raise Refused(f"the first attempt for {txn} is still running; try again shortly")
            return self._attempt(leased, recorded, resent=True)
        return self._answer(row, recorded, replayed=True)

    def _attempt(self, row: FirstAttempt, request: NewJob, *, resent: bool) -> Processed:
        job = _draft(request, row.job_id, row.started_at)
        try:
            result = self.processor.attempt(
                AttemptRequest(job, 0, row.idempotency_key, row.started_at, resent=resent)
            )
        except AttemptInDoubt as exc:
            self.first.unlease_first(row.transaction_id)
            raise InDoubt(
                f"no answer from the processor ({exc.message}); send the request again: the "
                "same processor key is re-sent, so it cannot charge twice"
            ) from None
        except ProcessorError:
            self.first.unlease_first(row.transaction_id)
            raise
        if result.awaiting:  # pragma: no cover - checkout is refused at intake
            raise Refused("a first attempt cannot wait on the customer")
        done = replace(
            row,
            outcome="succeeded" if result.succeeded else "failed",
            result=_result_record(result),
            finished_at=self.clock(),
        )
        self.first.finish_first(done)
        return self._answer(done, request, replayed=False)

    def _answer(self, row: FirstAttempt, request: NewJob, *, replayed: bool) -> Processed:
        assert row.result is not None and row.finished_at is not None
        result = _result_of(row.result)
        if result.succeeded:
            return Processed(row.transaction_id, row, result, None, None, replayed)
        at = row.finished_at
        failed = replace(
            request,
            error_code=result.error_code or "processing_error",
            decline_code=result.decline_code,
            error_message=result.message,
        )
        draft = replace(
            _draft(failed, row.job_id, at),
            error_code=failed.error_code,
            decline_code=failed.decline_code,
        )
        decision = self.policy.decide(draft, 0, result, at)
        job = None
        if decision.outcome is Outcome.RETRY:
            if row.queued:
                job = self.store.get(row.job_id)
            else:
                job, _ = self.operations.queue(failed, at, job_id=row.job_id)
                self.first.mark_queued(row.transaction_id)
        return Processed(row.transaction_id, row, result, decision, job, replayed)
