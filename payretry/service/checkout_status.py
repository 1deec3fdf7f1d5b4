"""What a checkout page shows the customer about a failed payment (seed 004's status endpoint):
whether a retry is available, how many remain, the state, and why it failed, in words."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from payretry.domain.durations import iso
from payretry.domain.models import Job, JobState

# Why a payment failed, as a customer reads it; by decline code, then error code.
REASONS: Mapping[str, str] = {
    "insufficient_funds": "The card has insufficient funds.",
    "card_velocity_exceeded": "The card's spending limit was reached.",
    "withdrawal_count_limit_exceeded": "The card's spending limit was reached.",
    "expired_card": "The card has expired.",
    "incorrect_cvc": "The card's security code is incorrect.",
    "invalid_cvc": "The card's security code is incorrect.",
    "incorrect_number": "The card number is incorrect.",
    "authentication_required": "The bank asks you to confirm the payment.",
    "confirm_card_data": "The bank asks you to update or confirm the card details.",
    "do_not_honor": "The bank declined the payment.",
    "generic_decline": "The bank declined the payment.",
    "try_again_later": "The bank could not approve the payment right now.",
    "issuer_not_available": "The bank could not be reached.",
    "lost_card": "The card was declined.",
    "stolen_card": "The card was declined.",
    "fraudulent": "The card was declined.",
    "card_declined": "The card was declined.",
    "network_error": "The payment could not reach the payment network.",
    "processing_error": "The payment could not be processed.",
    "service_unavailable": "The payment service was unavailable.",
    "rate_limit_exceeded": "The payment service was busy.",
    "authentication_failed": "The payment service could not verify the request.",
    "checkout_expired": "The checkout page expired before the payment was completed.",
}
_STATES: Mapping[JobState, str] = {
    JobState.SCHEDULED: "A new attempt is scheduled.",
    JobState.RUNNING: "A payment attempt is in progress.",
    JobState.AWAITING_PAYER: "Waiting for you to complete checkout.",
    JobState.SUCCEEDED: "The payment went through.",
    JobState.FAILED: "The payment failed and will not be retried.",
    JobState.EXHAUSTED: "The payment failed; no retries are left.",
    JobState.ABANDONED: "The payment window has closed.",
    JobState.CANCELLED: "The retry was cancelled.",
    JobState.EVICTED: "The retry was stopped to make room for other payments.",
    JobState.PARKED: "An attempt is being checked; no new attempt is made until it is.",
    JobState.BLOCKED: "Your card cannot be tried again; please use another payment method.",
}


def failure_reason(job: Job) -> str | None:
    """The latest failure, in words (None once the payment went through)."""
    if job.state is JobState.SUCCEEDED:
        return None
    code, decline = job.error_code, job.decline_code
    for attempt in reversed(job.attempts):
        if attempt.error_code:
            code, decline = attempt.error_code, attempt.decline_code
            break
    return REASONS.get(decline or "") or REASONS.get(code) or "The payment did not go through."


def checkout_status(job: Job, session_id: str) -> dict[str, Any]:
    return {
        "sessionId": session_id,
        "transactionId": job.transaction_id,
        "state": job.state.value,
        "stateText": _STATES[job.state],
        "retryAvailable": job.retry_available,
        "retryAttemptsRemaining": job.attempts_remaining,
        "attemptCount": job.attempt_count,
        "maxAttempts": job.max_attempts,
        "failureReason": failure_reason(job),
        "nextRetryAt": iso(job.next_retry_at),
        "expiresAt": iso(job.expires_at),
        "checkoutUrl": job.action.url if job.action else None,
        "amount_minor": job.money.amount_minor,
        "currency": job.money.currency,
    }
