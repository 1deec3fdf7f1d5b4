"""Every Stripe SDK error, classified (README: "Stripe errors and what follows"): a result the
policy decides on, an attempt in doubt (sent again with the same key), or a processor error
(nothing was sent; the jobs are given back)."""

from __future__ import annotations

import logging
from typing import Any

import stripe

from payretry.domain.results import AttemptInDoubt, AttemptResult
from payretry.errors import ProcessorError
from payretry.pacing import RateLimiter
from payretry.processors.stripe_classify import card_failure, redact

log = logging.getLogger("payretry")

_DEFAULT_PAUSE = 1.0  # seconds to hold every request after a 429 without Retry-After


def classify(exc: stripe.StripeError, limiter: RateLimiter) -> AttemptResult:
    """What a Stripe error means for the attempt. A 429 also pauses every request of the
    process (`limiter`) for its Retry-After."""
    status = exc.http_status or 0
    message = redact(f"{type(exc).__name__} {status or ''}: {exc.user_message or exc}")
    error = exc.error
    reference = None
    if error is not None and error.payment_intent is not None:
        reference = error.payment_intent.id
    if isinstance(exc, stripe.CardError):  # outside an attempt (a check): no fallback
        assert error is not None
        return card_failure(
            code=exc.code,
            decline_code=error.decline_code,
            message=error.message,
            reference=reference,
        )
    if isinstance(exc, stripe.RateLimitError):
        pause = retry_after(exc.headers)
        limiter.pause(pause)
        return AttemptResult.failure("rate_limit_exceeded", message=message, retry_after=pause)
    if isinstance(exc, stripe.AuthenticationError | stripe.PermissionError):
        raise ProcessorError(
            f"Stripe refused the API key ({message}); check STRIPE_API_KEY or "
            "[stripe] api_key_file. Nothing was sent; the jobs were given back."
        )
    if isinstance(exc, stripe.APIConnectionError):
        raise AttemptInDoubt("network_error", message or "no answer from Stripe")
    if isinstance(exc, stripe.IdempotencyError):
        log.error(
            "Stripe idempotency_error (a payretry bug: a key reused with other parameters): %s",
            message,
        )
        return AttemptResult.failure("idempotency_error", message=message, reference=reference)
    if isinstance(exc, stripe.InvalidRequestError):
        code = f" [{exc.code}]" if exc.code else ""
        return AttemptResult.failure(
            "invalid_request_error", message=f"{message}{code}", reference=reference
        )
    if status == 409:  # another request under the same key is still running
        raise AttemptInDoubt("network_error", message or "conflict")
    return AttemptResult.failure("service_unavailable", message=message, reference=reference)


def retry_after(headers: Any) -> float:
    try:
        value = float((headers or {}).get("Retry-After") or 0)
    except (TypeError, ValueError):
        value = 0.0
    return value if 0 < value <= 60 else _DEFAULT_PAUSE
