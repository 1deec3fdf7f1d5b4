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
from payretry.domain.results import AttemptInDoubt, AttemptRequest, AttemptResult
from payretry.pacing import RateLimiter
from payretry.processors.stripe_billing import BillingRetries
from payretry.processors.stripe_checkout import CheckoutFlow
from payretry.processors.stripe_classify import (
    AUTHENTICATION_REQUIRED,
    NOTIFY_AUTHENTICATE,
    card_failure,
)
from payretry.processors.stripe_client import StripeRequests, StripeSettings
from payretry.processors.stripe_errors import classify
from payretry.processors.stripe_metadata import metadata_for, metadata_of

log = logging.getLogger("payretry")


def decline_fields(error: Any, code: str | None) -> dict[str, Any]:
    """What a Stripe card error says, for the policy and for the card ledger: the codes
    (Stripe's advice, the network's MAC and response code) and the card's brand and
    fingerprint from the error's payment method (never card data)."""
    method = getattr(error, "payment_method", None)
    card = getattr(method, "card", None) if method is not None else None
    return {
        "code": code,
        "decline_code": getattr(error, "decline_code", None),
        "advice_code": getattr(error, "advice_code", None),
        "network_advice_code": getattr(error, "network_advice_code", None),
        "network_decline_code": getattr(error, "network_decline_code", None),
        "card_network": getattr(card, "brand", None) if card is not None else None,
        "card_fingerprint": getattr(card, "fingerprint", None) if card is not None else None,
        "message": getattr(error, "message", None),
    }


KEY_TTL = timedelta(hours=24)  # Stripe prunes idempotency keys once at least this old
_LOOKBACK = timedelta(minutes=10)  # clock skew allowance when listing a customer's intents


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
        self.requests = StripeRequests(conf, client)
        self.client = self.requests.client
        self.clock = clock
        self.rate: float | None = conf.rate
        self.checkout = CheckoutFlow(self.requests, conf)  # the CustomerActions port
        self.billing = BillingRetries(self.requests)  # the RetriedElsewhere port

    @property
    def limiter(self) -> RateLimiter:
        return self.requests.limiter

    # -- the port ------------------------------------------------------------------------------

    def attempt(self, request: AttemptRequest) -> AttemptResult:
        job, number, key = request.job, request.number, request.idempotency_key
        try:
            if job.refs.checkout_session:
                return self.checkout.start(job, number, key, request.sent_at)
            if request.resent and self.clock() - request.sent_at >= KEY_TTL:
                found = self._reconcile(request)
                if found is not None:
                    return found
            if job.refs.payment_intent:
                return self._reconfirm(request)
            if job.refs.customer and job.refs.payment_method:
                settled = self._settle_earlier(job, number)
                if settled is not None:
                    return settled
                return self._create(request)
            return AttemptResult.failure(
                "invalid_request_error",
                message="the job names no Stripe payment intent, customer and payment method, "
                "or checkout session",
            )
        except stripe.CardError as exc:
            error = exc.error
            assert error is not None
            return self._card_result(
                request,
                **decline_fields(error, exc.code),
                reference=error.payment_intent.id if error.payment_intent is not None else None,
            )
        except stripe.StripeError as exc:
            return classify(exc, self.limiter)

    def close(self) -> None:
        pass

    # -- requests ------------------------------------------------------------------------------

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return self.requests.call(fn, *args, **kwargs)

    def _create(self, request: AttemptRequest) -> AttemptResult:
        job, number, key = request.job, request.number, request.idempotency_key
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
        return self.from_intent(intent, request)

    def _reconfirm(self, request: AttemptRequest) -> AttemptResult:
        """Confirm the job's own PaymentIntent again, off-session. A PaymentIntent succeeds at
        most once, and it is read first: an earlier attempt that went through is found here."""
        job, number, key = request.job, request.number, request.idempotency_key
        pi_id = job.refs.payment_intent or ""
        intent = self.call(self.client.v1.payment_intents.retrieve, pi_id)
        if intent.status in ("succeeded", "processing", "canceled", "requires_capture"):
            return self.from_intent(intent, request)
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
        return self.from_intent(intent, request)

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

    def _reconcile(self, request: AttemptRequest) -> AttemptResult | None:
        """An unrecorded attempt whose key Stripe may have pruned: find what it did through
        search by its metadata. None when nothing was created (it is then sent, same key)."""
        job, key = request.job, request.idempotency_key
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
        return self.from_intent(intent, request)

    # -- answers -------------------------------------------------------------------------------

    def from_intent(self, intent: Any, request: AttemptRequest) -> AttemptResult:
        status = intent.status
        if status == "processing":  # a replay shows the first answer: read the state now
            intent = self.call(self.client.v1.payment_intents.retrieve, intent.id)
            status = intent.status
        if status in ("succeeded", "requires_capture"):
            return AttemptResult.success(intent.id)
        if status == "processing":
            raise AttemptInDoubt("processing_error", f"payment {intent.id} is still processing")
        if status == "requires_action":
            return self.authentication_required(request, intent.id, None)
        if status == "canceled":
            return AttemptResult.failure(
                "invalid_request_error",
                message=f"payment intent {intent.id} was canceled",
                reference=intent.id,
            )
        error = intent.last_payment_error
        if error is not None:
            return self._card_result(
                request, **decline_fields(error, error.code), reference=intent.id
            )
        return AttemptResult.failure(
            "processing_error",
            message=f"payment intent {intent.id} is {status}",
            reference=intent.id,
        )

    def _card_result(self, request: AttemptRequest, **fields: Any) -> AttemptResult:
        result = card_failure(**fields)
        if result.decline_code == AUTHENTICATION_REQUIRED:
            return self.authentication_required(request, result.reference, result)
        return result

    def authentication_required(
        self, request: AttemptRequest, reference: str | None, result: AttemptResult | None
    ) -> AttemptResult:
        """Never retried off-session. The customer is told to authenticate; with
        checkout_fallback a Checkout Session is created for them instead."""
        if self.conf.checkout_fallback and self.conf.success_url and self.conf.cancel_url:
            # Its own key, derived from the attempt's: another endpoint cannot share it.
            key = f"{request.idempotency_key}:checkout"
            return self.checkout.start(request.job, request.number, key, request.sent_at)
        return result or AttemptResult.failure(
            "card_declined",
            AUTHENTICATION_REQUIRED,
            "the payment needs the customer to authenticate (never retried off-session)",
            reference=reference,
            notify=NOTIFY_AUTHENTICATE,
        )
