"""The Stripe processor: off-session PaymentIntents (create and confirm, or re-confirm one the job
names) and Checkout Sessions the customer completes, through the official SDK.

Never a double charge:
- every request that can charge carries the attempt's idempotency key, and a re-sent attempt
  sends identical parameters, so Stripe replays its first answer;
- an attempt left unrecorded by a crash is re-sent with its own key while that key is younger
  than 24 hours (Stripe keeps keys at least that long); older, it is first reconciled through
  Stripe's search by its `payretry_attempt_key` metadata;
- after a 5xx (Stripe stores even a 500 under the key, and it does not prove the charge failed)
  the PaymentIntent's real state is looked up before the next attempt sends a new key;
- a connection error or timeout leaves the outcome unknown: AttemptInDoubt, and the same key
  is sent again later.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import stripe

from payretry.clock import utcnow
from payretry.domain.models import Attempt, AttemptOutcome, Job
from payretry.domain.ports import AttemptInDoubt, AttemptResult
from payretry.errors import ProcessorError
from payretry.processors.stripe_checkout import CheckoutFlow
from payretry.processors.stripe_classify import (
    AUTHENTICATION_REQUIRED,
    NOTIFY_AUTHENTICATE,
    card_failure,
    redact,
)
from payretry.processors.stripe_client import StripeSettings, make_client
from payretry.service.pacing import RateLimiter

log = logging.getLogger("payretry")

KEY_TTL = timedelta(hours=24)  # Stripe prunes idempotency keys once at least this old
_LOOKBACK = timedelta(minutes=10)  # clock skew allowance when listing a customer's intents
_DEFAULT_PAUSE = 1.0  # seconds to hold every request after a 429 without Retry-After


def attempt_number(idempotency_key: str) -> int:
    return int(idempotency_key.rsplit(":", 1)[1])


def metadata_for(job: Job, number: int, key: str) -> dict[str, str]:
    return {
        **job.metadata,
        "payretry_transaction_id": job.transaction_id,
        "payretry_attempt": str(number),
        "payretry_attempt_key": key,
    }


def metadata_of(obj: Any) -> dict[str, str]:
    found = getattr(obj, "metadata", None)
    return dict(found.to_dict()) if found else {}


def _pending(job: Job, number: int) -> Attempt | None:
    for attempt in job.attempts:
        if attempt.number == number and attempt.outcome is AttemptOutcome.PENDING:
            return attempt
    return None


class StripeProcessor:
    name = "stripe"
    needs_history = True  # the runner hands each job over with its attempts

    def __init__(
        self,
        conf: StripeSettings,
        *,
        client: stripe.StripeClient | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.conf = conf
        self.client = client or make_client(conf)
        self.clock = clock
        self.rate = conf.rate
        self.limiter = RateLimiter(conf.rate)  # every request, shared by all jobs of the run
        self.checkout = CheckoutFlow(self)

    # -- the port ------------------------------------------------------------------------------

    def attempt(self, job: Job, idempotency_key: str) -> AttemptResult:
        number = attempt_number(idempotency_key)
        pending = _pending(job, number)
        resent = pending is not None and pending.started_at < job.updated_at
        sent_at = pending.started_at if pending is not None else self.clock()
        try:
            if job.refs.checkout_session:
                return self.checkout.start(job, number, idempotency_key, sent_at)
            if resent and self.clock() - sent_at >= KEY_TTL:
                found = self._reconcile(job, idempotency_key)
                if found is not None:
                    return found
            if job.refs.payment_intent:
                return self._reconfirm(job, number, idempotency_key)
            if job.refs.customer and job.refs.payment_method:
                settled = self._settle_earlier(job, number)
                if settled is not None:
                    return settled
                return self._create(job, number, idempotency_key)
            return AttemptResult.failure(
                "invalid_request_error",
                message="the job names no Stripe payment intent, customer and payment method, "
                "or checkout session",
            )
        except stripe.CardError as exc:
            error = exc.error
            assert error is not None
            return self._card_result(
                job,
                number,
                idempotency_key,
                code=exc.code,
                decline_code=error.decline_code,
                advice_code=getattr(error, "advice_code", None),
                network_advice_code=getattr(error, "network_advice_code", None),
                message=error.message,
                reference=error.payment_intent.id if error.payment_intent is not None else None,
            )
        except stripe.StripeError as exc:
            return self.failure(exc)

    def check_action(self, job: Job) -> AttemptResult | None:
        try:
            return self.checkout.check(job)
        except stripe.RateLimitError as exc:
            self.failure(exc)
            return None
        except stripe.APIError as exc:
            log.warning(
                "could not check checkout session (%s); next run",
                redact(str(exc)),
                extra={"transaction_id": job.transaction_id},
            )
            return None
        except stripe.StripeError as exc:
            return self.failure(exc)

    def close(self) -> None:
        pass

    # -- requests ------------------------------------------------------------------------------

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """One request, paced by the run's shared limiter."""
        self.limiter.acquire()
        return fn(*args, **kwargs)

    def _create(self, job: Job, number: int, key: str) -> AttemptResult:
        params: dict[str, Any] = {
            "amount": job.money.amount_minor,
            "currency": job.money.currency.lower(),
            "customer": job.refs.customer or "",
            "payment_method": job.refs.payment_method or "",
            "confirm": True,
            "off_session": True,
            "metadata": metadata_for(job, number, key),
        }
        if self.conf.payment_method_types:  # for servers that predate automatic payment methods
            params["payment_method_types"] = list(self.conf.payment_method_types)
        else:  # off-session: nothing may redirect the absent customer
            params["automatic_payment_methods"] = {"enabled": True, "allow_redirects": "never"}
        intent = self.call(self.client.v1.payment_intents.create, params, {"idempotency_key": key})
        return self.from_intent(intent, job, number, key)

    def _reconfirm(self, job: Job, number: int, key: str) -> AttemptResult:
        """Confirm the job's own PaymentIntent again, off-session. A PaymentIntent succeeds at
        most once, and it is read first: an earlier attempt that went through is found here."""
        pi_id = job.refs.payment_intent or ""
        intent = self.call(self.client.v1.payment_intents.retrieve, pi_id)
        if intent.status in ("succeeded", "processing", "canceled", "requires_capture"):
            return self.from_intent(intent, job, number, key)
        self.call(
            self.client.v1.payment_intents.update,
            pi_id,
            {"metadata": metadata_for(job, number, key)},
        )
        confirm: dict[str, Any] = {"off_session": True}
        if job.refs.payment_method:
            confirm["payment_method"] = job.refs.payment_method
        intent = self.call(
            self.client.v1.payment_intents.confirm,
            pi_id,
            confirm,
            {"idempotency_key": key},
        )
        return self.from_intent(intent, job, number, key)

    def _settle_earlier(self, job: Job, number: int) -> AttemptResult | None:
        """Before a new key is sent: did an earlier attempt that ended in a 5xx charge after
        all? Listing the customer's intents is strongly consistent (search lags a minute)."""
        for earlier in job.attempts:
            if (
                earlier.number >= number
                or earlier.outcome is not AttemptOutcome.FAILED
                or earlier.error_code != "service_unavailable"
            ):
                continue
            intent = self._intent_of(job, earlier)
            if intent is None:
                continue
            if intent.status == "succeeded":
                return AttemptResult.success(
                    intent.id,
                    f"attempt {earlier.number} had charged despite Stripe's 5xx; nothing new sent",
                )
            if intent.status == "processing":
                raise AttemptInDoubt(
                    "service_unavailable",
                    f"attempt {earlier.number}'s payment {intent.id} is still processing",
                )
        return None

    def _intent_of(self, job: Job, earlier: Attempt) -> Any:
        if earlier.reference and earlier.reference.startswith("pi_"):
            return self.call(self.client.v1.payment_intents.retrieve, earlier.reference)
        since = int((earlier.started_at - _LOOKBACK).timestamp())
        listed = self.call(
            self.client.v1.payment_intents.list,
            {"customer": job.refs.customer or "", "created": {"gte": since}, "limit": 100},
        )
        for intent in listed.data:
            if metadata_of(intent).get("payretry_attempt_key") == earlier.idempotency_key:
                return intent
        return None

    def _reconcile(self, job: Job, key: str) -> AttemptResult | None:
        """An unrecorded attempt whose key Stripe may have pruned: find what it did through
        search by its metadata. None when nothing was created (it is then sent, same key)."""
        found = self.call(
            self.client.v1.payment_intents.search,
            {"query": f"metadata['payretry_attempt_key']:'{key}'", "limit": 1},
        )
        if not found.data:
            return None
        intent = found.data[0]
        log.info(
            "reconciled an unrecorded attempt older than 24 h: %s is %s",
            intent.id,
            intent.status,
            extra={"transaction_id": job.transaction_id},
        )
        return self.from_intent(intent, job, attempt_number(key), key)

    # -- answers -------------------------------------------------------------------------------

    def from_intent(self, intent: Any, job: Job, number: int, key: str) -> AttemptResult:
        status = intent.status
        if status == "processing":  # a replay shows the first answer: read the state now
            intent = self.call(self.client.v1.payment_intents.retrieve, intent.id)
            status = intent.status
        if status in ("succeeded", "requires_capture"):
            return AttemptResult.success(intent.id)
        if status == "processing":
            raise AttemptInDoubt("processing_error", f"payment {intent.id} is still processing")
        if status == "requires_action":
            return self.authentication_required(job, number, key, intent.id, None)
        if status == "canceled":
            return AttemptResult.failure(
                "invalid_request_error",
                message=f"payment intent {intent.id} was canceled",
                reference=intent.id,
            )
        error = intent.last_payment_error
        if error is not None:
            return self._card_result(
                job,
                number,
                key,
                code=error.code,
                decline_code=error.decline_code,
                advice_code=getattr(error, "advice_code", None),
                network_advice_code=getattr(error, "network_advice_code", None),
                message=error.message,
                reference=intent.id,
            )
        return AttemptResult.failure(
            "processing_error",
            message=f"payment intent {intent.id} is {status}",
            reference=intent.id,
        )

    def _card_result(self, job: Job, number: int, key: str, **fields: Any) -> AttemptResult:
        result = card_failure(**fields)
        if result.decline_code == AUTHENTICATION_REQUIRED:
            return self.authentication_required(job, number, key, result.reference, result)
        return result

    def authentication_required(
        self,
        job: Job,
        number: int,
        key: str,
        reference: str | None,
        result: AttemptResult | None,
    ) -> AttemptResult:
        """Never retried off-session. The customer is told to authenticate; with
        checkout_fallback a Checkout Session is created for them instead."""
        if self.conf.checkout_fallback and self.conf.success_url and self.conf.cancel_url:
            pending = _pending(job, number)
            sent_at = pending.started_at if pending is not None else self.clock()
            # Its own key, derived from the attempt's: another endpoint cannot share it.
            return self.checkout.start(job, number, f"{key}:checkout", sent_at)
        return result or AttemptResult.failure(
            "card_declined",
            AUTHENTICATION_REQUIRED,
            "the payment needs the customer to authenticate (never retried off-session)",
            reference=reference,
            notify=NOTIFY_AUTHENTICATE,
        )

    def failure(self, exc: stripe.StripeError) -> AttemptResult:
        """Every Stripe failure, classified (README: "Stripe errors and what follows")."""
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
            pause = _retry_after(exc.headers)
            self.limiter.pause(pause)
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


def _retry_after(headers: Any) -> float:
    try:
        value = float((headers or {}).get("Retry-After") or 0)
    except (TypeError, ValueError):
        value = 0.0
    return value if 0 < value <= 60 else _DEFAULT_PAUSE
