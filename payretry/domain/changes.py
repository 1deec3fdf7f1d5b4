"""Each state change of a job as a value, and the outbox entry it writes.

The domain decides what every change tells the world (`entry`, built by domain/events.py); a
store persists the change and that entry in one transaction, and chooses nothing. Changes a
service makes (queued, finished, settled, cancelled) are built by the service; changes that pick
their rows in the store's own transaction (a claim, a window that closed) are built there from
the rows, and say themselves what they write.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from payretry.domain.card_checks import (
    REASON_LIMIT,
    CardHistory,
    LedgerSettle,
    hold_reason,
    job_card,
    settle,
)
from payretry.domain.card_ledger import LedgerEntry
from payretry.domain.events import (
    OutboxEntry,
    on_cancel,
    on_claim,
    on_held,
    on_outcome,
    on_paid_elsewhere,
    on_parked,
    on_queue,
    on_queue_many,
    on_revived,
    on_window_closed,
)
from payretry.domain.models import AttemptOutcome, Job, JobState
from payretry.domain.network_rules import Verdict
from payretry.domain.policy import Decision
from payretry.domain.results import AttemptRequest, AttemptResult
from payretry.domain.rollups import Rollup, attempt_ended, job_ended, unended


def _job_ended(job: Job, state: str, at: datetime) -> list[Rollup]:
    return job_ended(
        state,
        at,
        currency=job.money.currency,
        amount_minor=job.money.amount_minor,
        error_code=job.error_code,
        decline_code=job.decline_code,
        first_failure_at=job.created_at,
    )


def counted_end(job: Job) -> datetime | None:
    """When the rollups counted the end of a final `job` (the day its `ended` and `code`
    counts are in), or None when they never did. Every failed job was counted when its attempt
    or its checkout ended (a Finish or a Settlement: the last attempt's `decision` is `failed`,
    its `finished_at` the time counted); a blocked job when an attempt's outcome blocked it
    (decision `blocked`, at its `finished_at`) or when a claim held it (Held counts the end at
    the time it blocked, the job's last change: a final job changes no more)."""
    if job.state not in (JobState.FAILED, JobState.BLOCKED):
        return None
    for attempt in job.attempts:
        if (
            attempt.number == job.attempt_count
            and attempt.decision == job.state.value
            and attempt.finished_at is not None
        ):
            return attempt.finished_at
    if job.state is JobState.BLOCKED:
        return job.updated_at  # blocked by a claim's check (or attempts not loaded)
    # Attempts not loaded: a failed job was counted when it last changed.
    return job.updated_at if not job.attempts else None


def _outcome(result: AttemptResult) -> str:
    if result.succeeded:
        return AttemptOutcome.SUCCEEDED.value
    return AttemptOutcome.AWAITING.value if result.awaiting else AttemptOutcome.FAILED.value


@dataclass(frozen=True, slots=True)
class Queued:
    """A new job, scheduled for its first retry. `card_entry`: the decline it was queued
    after, as the card ledger records it (attempt 0; None without a card identity);
    `verdict`: the card-network rule that moved its first retry, if one did."""

    job: Job
    card_entry: LedgerEntry | None = None
    verdict: Verdict | None = None

    @property
    def entry(self) -> OutboxEntry:
        return on_queue(self.job, self.verdict)

    @staticmethod
    def entries(queued: Sequence[Queued]) -> list[OutboxEntry]:
        """The entries of many new jobs at once (a bulk queue shares a few distinct times)."""
        verdicts = [q.verdict for q in queued]
        return on_queue_many(
            [q.job for q in queued], verdicts if any(v is not None for v in verdicts) else None
        )

    @staticmethod
    def in_claim_order(queued: Sequence[Queued]) -> list[Queued]:
        """Many new jobs in the order a claim takes them: the highest priority first, then
        the earliest first retry (a file's own order among equals). A store writes a bulk
        queue in this order, so the runs that follow change neighbouring pages of its table
        and indexes batch after batch, instead of pages all over them."""
        return sorted(queued, key=_claim_order)


def _claim_order(queued: Queued) -> tuple[int, datetime]:
    job = queued.job
    return -job.priority, job.next_retry_at or job.created_at


@dataclass(frozen=True, slots=True)
class Claimed:
    """A job claimed under a lease, with the attempt row already written. The claim sets the
    job's `updated_at` to the claim time. `card`: the job's card ledger as the claim read it,
    this attempt's entry in it (None: no card identity)."""

    job: Job
    attempt_number: int
    idempotency_key: str
    lease_token: str
    card: CardHistory | None = None

    @property
    def entry(self) -> OutboxEntry:
        return on_claim(self.job, self.attempt_number, self.job.updated_at)

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

    def request(self) -> AttemptRequest:
        """What the processor is asked: this attempt, its key, when it was first sent."""
        first = self.sent_before
        return AttemptRequest(
            self.job,
            self.attempt_number,
            self.idempotency_key,
            first or self.job.updated_at,
            resent=first is not None,
        )


@dataclass(frozen=True, slots=True)
class Finish:
    """An attempt's outcome and the decision that follows, recorded fenced by the lease."""

    claimed: Claimed
    result: AttemptResult
    decision: Decision
    finished_at: datetime
    settled: LedgerSettle | None = None  # `ledger`, when the decision already worked it out
    processor: str | None = None  # the processor's name, for its attempt durations
    sent_at: datetime | None = None  # when the processor was called (else: the claim time)

    @property
    def entry(self) -> OutboxEntry:
        c = self.claimed
        entry = on_outcome(c.job, c.attempt_number, self.result, self.decision, self.finished_at)
        if not self.processor:
            return entry
        took = max(0.0, (self.finished_at - self.started_at).total_seconds())
        data = {**entry.data, "processor": self.processor, "duration_ms": round(took * 1000)}
        return replace(entry, data=data)

    @property
    def started_at(self) -> datetime:
        """When the processor was called for this attempt (the claim time, the job's
        `updated_at`, when not told)."""
        return self.sent_at or self.claimed.job.updated_at

    @property
    def rollups(self) -> list[Rollup]:
        """The counts this outcome adds: the attempt (and how long the processor took), and
        the job's end if any."""
        c = self.claimed
        found = attempt_ended(
            c.attempt_number,
            _outcome(self.result),
            self.finished_at,
            processor=self.processor,
            started_at=self.started_at,
        )
        if self.decision.state.final:
            found += _job_ended(c.job, self.decision.state.value, self.finished_at)
        return found

    @property
    def ledger(self) -> LedgerSettle | None:
        """What the outcome writes to the card ledger (None: nothing; no card identity)."""
        if self.settled is not None:
            return self.settled
        c = self.claimed
        return settle(c.job, c.attempt_number, c.card, self.result, self.finished_at)


@dataclass(frozen=True, slots=True)
class Held:
    """A due job the card-network rules kept from being attempted when it was claimed: moved
    to the earliest time that keeps every rule (never earlier than it was due), or blocked.
    Written in the claim's transaction instead of the attempt; `job` is as stored after it."""

    job: Job
    number: int  # the attempt that was not made
    verdict: Verdict
    at: datetime

    @classmethod
    def of(cls, job: Job, number: int, verdict: Verdict, at: datetime) -> Held:
        if verdict.blocked:
            state, when = JobState.BLOCKED, None
        else:
            assert verdict.at is not None
            due = job.next_retry_at
            state, when = JobState.SCHEDULED, verdict.at if due is None else max(verdict.at, due)
        held = replace(
            job,
            state=state,
            next_retry_at=when,
            reason=hold_reason(number, verdict),
            network_rule=verdict.rule,
            lease_token=None,
            lease_expires_at=None,
            updated_at=at,
        )
        return cls(held, number, verdict, at)

    @property
    def blocked(self) -> bool:
        return self.job.state is JobState.BLOCKED

    @property
    def entry(self) -> OutboxEntry:
        return on_held(self.job, self.number, self.verdict, self.at)

    @property
    def rollups(self) -> list[Rollup]:
        """A block ends the job (counted as it ends); a postponement counts nothing."""
        return _job_ended(self.job, JobState.BLOCKED.value, self.at) if self.blocked else []


class ClaimBatch(list[Claimed]):
    """What a claim took: the jobs claimed (the list itself) and `held`, the due jobs the
    card-network rules kept from being attempted (postponed or blocked in the claim's
    transaction)."""

    def __init__(self, claimed: Iterable[Claimed] = (), held: Iterable[Held] = ()) -> None:
        super().__init__(claimed)
        self.held: tuple[Held, ...] = tuple(held)


@dataclass(frozen=True, slots=True)
class Unsettled:
    """An attempt whose outcome is not known (a connection error, a timeout): it keeps its
    pending row and its lease, which lapses; the rescue returns the job and the same key is
    sent again (the processor replays the first answer). Nothing is written."""

    claimed: Claimed
    error_code: str
    message: str


@dataclass(frozen=True, slots=True)
class Settlement:
    """The end of an attempt that waited on the customer (awaiting_payer)."""

    job: Job
    result: AttemptResult
    decision: Decision
    finished_at: datetime

    @property
    def number(self) -> int:
        return self.job.attempt_count

    @property
    def entry(self) -> OutboxEntry:
        return on_outcome(self.job, self.number, self.result, self.decision, self.finished_at)

    @property
    def rollups(self) -> list[Rollup]:
        found = attempt_ended(self.number, _outcome(self.result), self.finished_at)
        if self.decision.state.final:
            found += _job_ended(self.job, self.decision.state.value, self.finished_at)
        return found


@dataclass(frozen=True, slots=True)
class Cancelled:
    """An operator stops a job that is not final (`job` as the operator saw it)."""

    job: Job
    at: datetime
    reason: str

    @property
    def entry(self) -> OutboxEntry:
        return on_cancel(self.job, self.at, self.reason)

    @property
    def rollups(self) -> list[Rollup]:
        return _job_ended(self.job, "cancelled", self.at)


@dataclass(frozen=True, slots=True)
class WindowClosed:
    """A waiting job's payment window closed before its next attempt."""

    job: Job
    at: datetime

    @property
    def entry(self) -> OutboxEntry:
        return on_window_closed(self.job, self.at)

    @property
    def rollups(self) -> list[Rollup]:
        return _job_ended(self.job, "abandoned", self.at)


@dataclass(frozen=True, slots=True)
class Parked:
    """A running job whose lease lapsed after `max_rescues` rescues of the same attempt: no
    runner ever recorded an outcome for it (a poison job). Held for an operator; the attempt's
    row and key are kept, so an operator's retry cannot charge twice."""

    job: Job
    at: datetime

    @property
    def entry(self) -> OutboxEntry:
        return on_parked(self.job, self.at)

    @staticmethod
    def reason(number: int, rescues: int) -> str:
        return (
            f"attempt {number} was sent {rescues + 1} times without an outcome (its runner "
            f"died each time): parked for review; `payretry retry` re-sends it under the same "
            f"idempotency key, `payretry cancel` ends it"
        )


@dataclass(frozen=True, slots=True)
class Rescue:
    """What one rescue pass did: jobs back to scheduled (their attempt re-sent with the same
    key), and jobs parked because their attempt was rescued too often."""

    rescued: int = 0
    parked: tuple[Job, ...] = ()


@dataclass(frozen=True, slots=True)
class PaidElsewhere:
    """The payment a job retries succeeded outside payretry (Stripe said so in a webhook): the
    job, in whatever active state it is (`job` as the caller saw it), ends succeeded now with
    the reference. An attempt in flight loses its lease (its late outcome is never recorded);
    an attempt in flight or waiting on the customer is closed as succeeded with the reference.
    One of the two explicit exceptions to the transition table (models.PAID_ELSEWHERE_FROM)."""

    job: Job
    reference: str
    by: str  # the Stripe event id
    what: str  # the Stripe event type
    at: datetime

    @property
    def open_attempt(self) -> int | None:
        """The attempt this closes: in flight (running, parked) or waiting on the customer."""
        state = self.job.state
        if state in (JobState.RUNNING, JobState.PARKED):
            return self.job.attempt_count + 1
        if state is JobState.AWAITING_PAYER:
            return self.job.attempt_count
        return None

    @property
    def card_entry(self) -> tuple[str, int] | None:
        """The card ledger entry of the attempt in flight that this closes, as (the key it
        was written under, attempt number): its claim wrote it as an `attempt` (a possible
        decline); the payment succeeded, so it is settled as an approval in the same
        transaction. None: no attempt in flight, or no card identity (no entry was written;
        an attempt waiting on the customer has none either)."""
        if self.job.state not in (JobState.RUNNING, JobState.PARKED):
            return None
        card = job_card(self.job)
        if card is None:
            return None
        return card.ledger_key, self.job.attempt_count + 1

    @property
    def number(self) -> int:
        """The attempt the event is about: the open one, else the one now never made."""
        return self.open_attempt or self.job.attempt_count + 1

    @property
    def reason(self) -> str:
        return (
            f"paid outside payretry: Stripe {self.what} ({self.by}) says payment "
            f"{self.reference} succeeded; no further attempt is sent"
        )

    @property
    def entry(self) -> OutboxEntry:
        return on_paid_elsewhere(self.job, self.number, self.reference, self.by, self.at)

    @property
    def rollups(self) -> list[Rollup]:
        found = []
        if self.open_attempt is not None:
            found += attempt_ended(self.open_attempt, AttemptOutcome.SUCCEEDED.value, self.at)
        return found + _job_ended(self.job, JobState.SUCCEEDED.value, self.at)


@dataclass(frozen=True, slots=True)
class Revived:
    """New card data for a job that stopped or waits because its card needed it (see
    domain/revival.py, which decides `why`): scheduled for its next attempt now, with the new
    payment method (and customer, card network and fingerprint when known), counted under the
    same caps and window. `job` as the caller saw it; `by`: the Stripe event id, or
    `operator`. The other explicit exception to the transition table (models.REVIVABLE_FROM)."""

    job: Job
    payment_method: str
    customer: str | None
    card_network: str | None
    card_fingerprint: str | None
    by: str
    why: str
    at: datetime

    @property
    def revived(self) -> Job:
        """The job as stored after the revival."""
        job = self.job
        refs = replace(
            job.refs,
            payment_method=self.payment_method,
            customer=self.customer or job.refs.customer,
        )
        source = "an operator" if self.by == "operator" else f"Stripe event {self.by}"
        return replace(
            job,
            state=JobState.SCHEDULED,
            next_retry_at=self.at,
            refs=refs,
            card_network=self.card_network,
            card_fingerprint=self.card_fingerprint,
            network_rule=None,
            revived_after=job.attempt_count,
            reason=(
                f"revived: {source} gave a new payment method {self.payment_method} after the "
                f"job was {self.why}; attempt {job.attempt_count + 1} follows now"
            )[:REASON_LIMIT],
            updated_at=self.at,
        )

    @property
    def entry(self) -> OutboxEntry:
        return on_revived(self.revived, self.by, self.at)

    @property
    def rollups(self) -> list[Rollup]:
        """A revived job has not ended after all: the end its failure or block was counted
        as is taken back, on the day it was counted, in the revival's transaction, so each job
        counts once in the rollups, with the outcome it ends with in the end."""
        ended = counted_end(self.job)
        if ended is None:
            return []
        job = self.job
        return unended(
            job.state.value,
            ended,
            currency=job.money.currency,
            amount_minor=job.money.amount_minor,
            error_code=job.error_code,
            decline_code=job.decline_code,
        )
