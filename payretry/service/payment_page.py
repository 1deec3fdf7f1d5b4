"""What the customer's payment page says: the payment in words, its progress, whether the
customer may retry now and, if not, why, in one sentence. Only what `payretry status` would
print and nothing internal: no codes, no ids but the transaction's, no card data."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from payretry.domain.durations import format_duration
from payretry.domain.models import Job, JobState
from payretry.service.checkout_status import failure_reason

# Declines after which the card itself must change (or be confirmed) before a retry can work.
CARD_UPDATE = frozenset(
    {
        "confirm_card_data",
        "expired_card",
        "incorrect_number",
        "invalid_number",
        "incorrect_cvc",
        "invalid_cvc",
        "invalid_expiry_month",
        "invalid_expiry_year",
        "new_account_information_available",
        "card_not_supported",
    }
)
# Why the last attempt's retry is done with, for the page's flash line after a press.
RESULTS = {
    "succeeded": "Your payment went through. Thank you.",
    "rescheduled": "That try did not go through either; we will try again automatically.",
    "failed": "That try did not go through, and the payment will not be retried.",
    "exhausted": "That try did not go through, and no attempts are left.",
    "abandoned": "That try did not go through, and the time to pay has run out.",
    "awaiting_payer": "Complete checkout at the link below to pay.",
    "throttled": "Please wait a moment before trying again.",
    "refused": "The payment cannot be retried now.",
    "in_doubt": "We could not hear back about that try; it will be checked automatically.",
    "busy": "Your last press is still being handled.",
}


def when(value: datetime | None) -> str | None:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value is not None else None


@dataclass(frozen=True, slots=True)
class PaymentView:
    transaction_id: str
    amount: str  # "49.90 EUR"
    headline: str
    reason: str | None  # what failed, in words
    outcome: str | None  # paid, not_retried, expired; None while open
    attempts_made: int
    attempts_left: int
    max_attempts: int
    next_try: str | None
    can_retry: bool
    why_not: str | None  # the sentence beside a disabled button
    checkout_url: str | None
    wait_seconds: int | None  # the throttle's wait, when it is why


def _last_decline(job: Job) -> str | None:
    for attempt in reversed(job.attempts):
        if attempt.error_code:
            return attempt.decline_code
    return job.decline_code


def payment_view(job: Job, now: datetime, wait: timedelta | None) -> PaymentView:
    """The page of `job` at `now`; `wait`: how long the throttle still holds a retry (None:
    free)."""
    state = job.state
    outcome = None
    if state is JobState.SUCCEEDED:
        outcome, headline = "paid", "Paid"
    elif state is JobState.ABANDONED:
        outcome, headline = "expired", "Expired: this payment will not be retried"
    elif state.final:
        outcome, headline = "not_retried", "This payment will not be retried"
    elif state is JobState.AWAITING_PAYER:
        headline = "Waiting for you to complete checkout"
    else:
        headline = "Payment not completed yet"
    closed = job.expires_at is not None and job.expires_at <= now
    decline = _last_decline(job)
    why: str | None = None
    wait_seconds = None
    if state is JobState.SUCCEEDED:
        why = "This payment has been paid; there is nothing to retry."
    elif decline in CARD_UPDATE and not job.retry_available:
        why = "The card needs updating before this payment can be tried again."
    elif state is JobState.ABANDONED or closed:
        ends = f" at {when(job.expires_at)}" if job.expires_at else ""
        why = f"The time to pay ended{ends}, so it can no longer be retried."
    elif state is JobState.EXHAUSTED or (not state.final and job.attempts_remaining <= 0):
        why = f"No attempts are left: all {job.max_attempts} have been used."
    elif state in (JobState.CANCELLED, JobState.EVICTED):
        why = "The merchant has stopped retrying this payment."
    elif state is JobState.BLOCKED:
        why = "The card's network allows no more attempts on this card; use another card."
    elif state is JobState.FAILED:
        why = "This payment was declined in a way that retrying cannot fix."
    elif state is JobState.AWAITING_PAYER:
        why = "Complete checkout at the link below; a retry from here is not needed."
    elif state is JobState.RUNNING:
        why = "A payment attempt is in progress right now."
    elif state is JobState.PARKED:
        why = "The merchant is reviewing this payment before it is tried again."
    elif wait is not None and wait > timedelta(0):
        wait_seconds = max(1, int(-(-wait.total_seconds() // 1)))
        at = when(now + timedelta(seconds=wait_seconds))
        why = f"You can try again at {at} (in {format_duration(timedelta(seconds=wait_seconds))})."
    reason = failure_reason(job)
    return PaymentView(
        transaction_id=job.transaction_id,
        amount=str(job.money),
        headline=headline,
        reason=reason,
        outcome=outcome,
        attempts_made=job.attempt_count,
        attempts_left=job.attempts_remaining,
        max_attempts=job.max_attempts,
        next_try=when(job.next_retry_at) if state is JobState.SCHEDULED else None,
        can_retry=why is None and job.retry_available,
        why_not=why,
        checkout_url=job.action.url if job.action and state is JobState.AWAITING_PAYER else None,
        wait_seconds=wait_seconds,
    )
