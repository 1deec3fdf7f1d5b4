"""Retry jobs, their attempts and their states. Frozen records, aware UTC datetimes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from payretry.domain.money import Money
from payretry.errors import Refused


class JobState(StrEnum):
    SCHEDULED = "scheduled"  # waiting for its next retry time
    RUNNING = "running"  # claimed by a runner under a lease
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # the last error is not retryable
    EXHAUSTED = "exhausted"  # attempts used up
    ABANDONED = "abandoned"  # the next retry would fall after the payment window
    CANCELLED = "cancelled"
    # A Checkout Session was sent to the customer, who must complete it; each run-due checks it.
    # (16 characters at most: the state column's width.)
    AWAITING_PAYER = "awaiting_payer"
    # An attempt whose runner died again and again (a poison job): rescued `[runner]
    # max_rescues` times without an outcome, it is held for an operator. Nothing automatic
    # moves it; `payretry retry` re-sends the same attempt under its same key, `cancel` ends it.
    PARKED = "parked"
    # A card-network rule forbids the next retry on the job's card (a Visa category 1 or
    # Mastercard MAC 01/03/21 decline), or moves it past the payment window; the job's reason
    # names the rule and its source (payretry/domain/network_rules.py).
    BLOCKED = "blocked"
    # The queue was full (`[queue] max_active`) and a job of higher priority took this one's
    # place: it was the lowest-priority scheduled job with the latest next retry
    # (payretry/domain/bound.py). Its reason names the job that took its place.
    EVICTED = "evicted"

    @property
    def final(self) -> bool:
        return self in FINAL_STATES


FINAL_STATES = frozenset(
    {
        JobState.SUCCEEDED,
        JobState.FAILED,
        JobState.EXHAUSTED,
        JobState.ABANDONED,
        JobState.CANCELLED,
        JobState.BLOCKED,
        JobState.EVICTED,
    }
)
# Active: at most one per transaction. A parked job counts: its attempt may have charged, so
# no new job for the transaction may start another.
ACTIVE_STATES = frozenset(
    {JobState.SCHEDULED, JobState.RUNNING, JobState.AWAITING_PAYER, JobState.PARKED}
)

# The one table of legal transitions. Final states have no way out.
TRANSITIONS: Mapping[JobState, frozenset[JobState]] = {
    JobState.SCHEDULED: frozenset(
        {
            JobState.RUNNING,
            JobState.CANCELLED,
            JobState.ABANDONED,
            JobState.SCHEDULED,  # rescheduled, or postponed by a card-network rule at claim
            JobState.BLOCKED,  # a card-network rule stopped it at claim
            JobState.EVICTED,  # a job of higher priority took its place in a full queue
        }
    ),
    JobState.RUNNING: frozenset(
        {
            JobState.SCHEDULED,  # retry later, or a lease rescued / released
            JobState.SUCCEEDED,
            JobState.FAILED,
            JobState.EXHAUSTED,
            JobState.ABANDONED,
            JobState.AWAITING_PAYER,  # a Checkout Session now waits for the customer
            JobState.PARKED,  # rescued too often: held for an operator
            JobState.BLOCKED,  # a card-network rule forbids the next retry
        }
    ),
    JobState.PARKED: frozenset(
        {
            JobState.RUNNING,  # an operator's retry: the same attempt, the same key
            JobState.CANCELLED,
        }
    ),
    JobState.AWAITING_PAYER: frozenset(
        {
            JobState.SUCCEEDED,  # the customer completed checkout
            JobState.SCHEDULED,  # the session expired: the next retry
            JobState.FAILED,
            JobState.EXHAUSTED,
            JobState.ABANDONED,
            JobState.CANCELLED,
        }
    ),
    **{state: frozenset() for state in FINAL_STATES},
}


# Two narrow, explicit exceptions to the table, each made by its own change value
# (domain/changes.py) and recorded with its own event:
# - paid elsewhere (`PaidElsewhere`): Stripe says the payment a job retries succeeded outside
#   payretry (a webhook). Whatever active state the job is in, it ends succeeded at once, and a
#   running attempt's late outcome loses its lease fence.
PAID_ELSEWHERE_FROM = frozenset(ACTIVE_STATES)
# - revived (`Revived`): the card needed new data (expired, confirm the card, new account
#   information, Mastercard MAC 01) and the customer gave it: a job that failed or was blocked for
#   that reason only, or that waits after such a decline, is scheduled again at once, within its
#   window and its caps (domain/revival.py decides). No other final job ever changes.
REVIVABLE_FROM = frozenset({JobState.FAILED, JobState.BLOCKED, JobState.SCHEDULED})


def check_transition(current: JobState, target: JobState) -> None:
    """Raise Refused unless `current -> target` is legal."""
    if target not in TRANSITIONS[current]:
        if current.final:
            raise Refused(f"job is already {current.value}; final states never change")
        raise Refused(f"a {current.value} job cannot become {target.value}")


class AttemptOutcome(StrEnum):
    PENDING = "pending"  # written before the processor is called; outcome not yet recorded
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    AWAITING = "awaiting_payer"  # a Checkout Session the customer has yet to complete


@dataclass(frozen=True, slots=True)
class CustomerAction:
    """What the customer must do to finish an attempt: complete a Checkout Session."""

    ref: str  # the new Checkout Session's id
    url: str | None
    expires_at: datetime | None


@dataclass(frozen=True, slots=True)
class QueuedAdvice:
    """What the processor and the card network said with the failure a job is queued after:
    Stripe's `advice_code` (try_again_later, do_not_try_again, confirm_card_data), the
    network's `network_advice_code` (Mastercard's MAC: "24" ... "30" wait, "03"/"21" never) and
    `network_decline_code` (the issuer's response code: Visa's category 1 never). Validated at
    intake (service/intake.py)."""

    advice_code: str | None = None
    network_advice_code: str | None = None
    network_decline_code: str | None = None

    def __bool__(self) -> bool:
        return bool(self.advice_code or self.network_advice_code or self.network_decline_code)


@dataclass(frozen=True, slots=True)
class ProcessorRefs:
    payment_intent: str | None = None
    customer: str | None = None
    payment_method: str | None = None
    checkout_session: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        return {
            "payment_intent": self.payment_intent,
            "customer": self.customer,
            "payment_method": self.payment_method,
            "checkout_session": self.checkout_session,
        }


@dataclass(frozen=True, slots=True)
class NewJob:
    """A validated request to queue a retry."""

    transaction_id: str
    user_id: str
    money: Money
    error_code: str
    decline_code: str | None
    error_message: str | None
    refs: ProcessorRefs
    metadata: Mapping[str, str]
    expires_at: datetime | None
    priority: int | None  # None: from the amount
    window: str | None = None  # how the window was given, for the record
    # The card, when the caller knows it: its network and the processor's fingerprint (an
    # opaque id, never card data). With them the card-network rules count per card.
    card_network: str | None = None
    card_fingerprint: str | None = None
    # What the failure's processor and card network advised (QueuedAdvice): read by the first
    # retry's decision, and kept in the card ledger's queueing decline.
    advice: QueuedAdvice | None = None

    @property
    def effective_priority(self) -> int:
        return self.priority if self.priority is not None else self.money.default_priority()

    def draft(self, job_id: str, now: datetime) -> Job:
        """The job this request makes, before the policy has scheduled it (its first retry,
        its limit and its reason are the decision's)."""
        return Job(
            id=job_id,
            transaction_id=self.transaction_id,
            user_id=self.user_id,
            money=self.money,
            error_code=self.error_code,
            decline_code=self.decline_code,
            error_message=self.error_message,
            state=JobState.SCHEDULED,
            attempt_count=0,
            max_attempts=0,
            next_retry_at=None,
            created_at=now,
            updated_at=now,
            expires_at=self.expires_at,
            priority=self.effective_priority,
            refs=self.refs,
            metadata=self.metadata,
            card_network=self.card_network,
            card_fingerprint=self.card_fingerprint,
            advice=self.advice,
        )

    def same_request_as(self, other: NewJob) -> bool:
        """True when two requests would queue the same job (window and message aside)."""
        return (
            self.user_id == other.user_id
            and self.money == other.money
            and self.error_code == other.error_code
            and self.decline_code == other.decline_code
            and self.refs == other.refs
            and dict(self.metadata) == dict(other.metadata)
            and self.effective_priority == other.effective_priority
            and self.card_network == other.card_network
            and self.card_fingerprint == other.card_fingerprint
        )

    def same_request(self, job: Job) -> bool:
        """True when `job` was queued with these parameters (the window, given relative to
        "now", and the free-text message are not compared)."""
        return (
            job.user_id == self.user_id
            and job.money == self.money
            and job.error_code == self.error_code
            and job.decline_code == self.decline_code
            and job.refs == self.refs
            and dict(job.metadata) == dict(self.metadata)
            and job.priority == self.effective_priority
            and job.card_network == self.card_network
            and job.card_fingerprint == self.card_fingerprint
        )


@dataclass(frozen=True, slots=True)
class Attempt:
    number: int
    idempotency_key: str
    outcome: AttemptOutcome
    started_at: datetime
    finished_at: datetime | None = None
    error_code: str | None = None
    decline_code: str | None = None
    message: str | None = None
    reference: str | None = None
    decision: str | None = None  # what followed: rescheduled, failed, exhausted, ...
    next_retry_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Job:
    id: str
    transaction_id: str
    user_id: str
    money: Money
    error_code: str
    decline_code: str | None
    error_message: str | None
    state: JobState
    attempt_count: int
    max_attempts: int
    next_retry_at: datetime | None
    created_at: datetime
    updated_at: datetime
    expires_at: datetime | None
    priority: int
    refs: ProcessorRefs = field(default_factory=ProcessorRefs)
    metadata: Mapping[str, str] = field(default_factory=dict)
    reason: str | None = None  # why the job is in its state, in a sentence
    policy_code: str | None = None  # the policy row that scheduled the next retry
    lease_token: str | None = None
    lease_expires_at: datetime | None = None
    seq: int = 0
    rescues: int = 0  # times the current attempt was rescued without an outcome
    attempts: tuple[Attempt, ...] = ()
    action: CustomerAction | None = None  # set while awaiting_payer
    card_network: str | None = None  # visa, mastercard, ... (Network values)
    card_fingerprint: str | None = None  # the processor's card fingerprint: an opaque id
    network_rule: str | None = None  # the card-network rule that moved or stopped the job
    # Revived with new card data after this many attempts: the declines of attempts up to it
    # were made on the old card data (the card-network rules no longer hold them against the
    # job's next attempt). None: never revived.
    revived_after: int | None = None
    # What the failure the job was queued after advised, as its request gave it: its first
    # retry is decided on it, and the card ledger keeps its network codes in the queueing
    # decline (attempt 0), which every later check of the card reads. Not a column of the job:
    # a job read back from the store has None.
    advice: QueuedAdvice | None = None

    @property
    def attempts_remaining(self) -> int:
        if self.state.final:
            return 0
        return max(0, self.max_attempts - self.attempt_count)

    @property
    def retry_available(self) -> bool:
        return self.state is JobState.SCHEDULED and self.attempts_remaining > 0

    def idempotency_key(self, number: int | None = None) -> str:
        """`payretry:<job id>:<attempt number>`: the same attempt re-sent keeps the same key."""
        return attempt_key(self.id, self.attempt_count + 1 if number is None else number)


def attempt_key(job_id: str, number: int) -> str:
    return f"payretry:{job_id}:{number}"
