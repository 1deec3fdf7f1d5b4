"""Checkout mode (seed 004): a new Checkout Session the customer completes, preserving the original
session's id and metadata (only the retry metadata changes), expiring within the job's payment
window. Stripe allows a session 30 minutes to 24 hours; a window closing sooner than 30 minutes
from now leaves no room for a session, and the attempt fails without a request.

A session completed with a payment method that settles later (a bank debit: `status` complete,
`payment_status` unpaid) is neither paid nor expired: each check reads its PaymentIntent and
waits until that payment arrives (succeeded) or fails (checkout_expired, then the policy).
Cancelling a waiting job expires its session first (`expire_action`), so nobody can pay it."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import stripe

from payretry.domain.durations import iso
from payretry.domain.models import CustomerAction, Job
from payretry.domain.results import ActionClosed, AttemptInDoubt, AttemptResult, Closing
from payretry.errors import ProcessorError
from payretry.processors.stripe_classify import redact
from payretry.processors.stripe_client import StripeRequests, StripeSettings
from payretry.processors.stripe_errors import classify
from payretry.processors.stripe_metadata import metadata_for, metadata_of

log = logging.getLogger("payretry")

SHORTEST = timedelta(minutes=30)  # Stripe's bounds on a session's expires_at
LONGEST = timedelta(hours=24)
_MARGIN = timedelta(minutes=1)  # the request reaches Stripe a moment after `sent_at`
_PAID = ("paid", "no_payment_required")


def session_expiry(sent_at: datetime, window_end: datetime | None) -> datetime | None:
    """The latest expiry Stripe accepts that is no later than the window; None if none fits.
    Computed from when the attempt was first sent, so a re-send asks for the same thing."""
    latest = sent_at + LONGEST - _MARGIN
    if window_end is not None:
        latest = min(latest, window_end)
    latest = latest.replace(microsecond=0)
    if latest < sent_at + SHORTEST + _MARGIN:
        return None
    return latest


class CheckoutFlow:
    """Checkout Sessions for attempts that need the customer, and how each ended (the
    CustomerActions port): requests through the processor's shared, paced client."""

    def __init__(self, requests: StripeRequests, conf: StripeSettings) -> None:
        self.requests = requests
        self.conf = conf

    def _original_metadata(self, session_id: str) -> dict[str, str]:
        r = self.requests
        try:
            original = r.call(r.v1.checkout.sessions.retrieve, session_id)
        except stripe.InvalidRequestError as exc:
            log.warning("original checkout session %s not found (%s)", session_id, exc.code)
            return {}
        found = metadata_of(original)
        return {k: v for k, v in found.items() if not k.startswith("payretry_")}

    def start(self, job: Job, number: int, key: str, sent_at: datetime) -> AttemptResult:
        """Create the attempt's Checkout Session (its idempotency key, identical parameters on
        a re-send) and hand the customer its URL."""
        conf, r = self.conf, self.requests
        if not (conf.success_url and conf.cancel_url):
            raise ProcessorError(
                "checkout mode needs [stripe] checkout_success_url and checkout_cancel_url "
                "(PAYRETRY_STRIPE_CHECKOUT_SUCCESS_URL, ..._CANCEL_URL); nothing was sent"
            )
        expires = session_expiry(sent_at, job.expires_at)
        if expires is None:
            return AttemptResult.failure(
                "checkout_window_closing",
                message=f"the payment window ends {iso(job.expires_at)}: too soon for a Checkout "
                "Session (Stripe needs at least 30 minutes); nothing sent",
            )
        original = job.refs.checkout_session
        metadata = {
            **(self._original_metadata(original) if original else {}),
            **metadata_for(job, number, key.removesuffix(":checkout")),
        }
        if original:
            metadata["payretry_original_session"] = original
        params: dict[str, Any] = {
            "mode": "payment",
            "line_items": [
                {
                    "price_data": {
                        "currency": job.money.currency.lower(),
                        "unit_amount": job.money.amount_minor,
                        "product_data": {"name": job.metadata.get("description", "Payment")},
                    },
                    "quantity": 1,
                }
            ],
            "success_url": conf.success_url,
            "cancel_url": conf.cancel_url,
            "expires_at": int(expires.timestamp()),
            "metadata": metadata,
            "payment_intent_data": {"metadata": metadata},
        }
        if len(job.transaction_id) <= 200:
            params["client_reference_id"] = job.transaction_id
        if job.refs.customer:
            params["customer"] = job.refs.customer
        session = r.call(r.v1.checkout.sessions.create, params, {"idempotency_key": key})
        at = datetime.fromtimestamp(session.expires_at, UTC) if session.expires_at else expires
        action = CustomerAction(session.id, session.url, at)
        notify = f"complete your payment of {job.money} at {session.url} before {iso(at)}"
        return AttemptResult.awaiting_customer(
            action, notify, f"checkout session {session.id} created (attempt {number})"
        )

    def check_action(self, job: Job) -> AttemptResult | None:
        """How the customer's session ended, or None while it is open or could not be read (a
        429 pauses every request; a 5xx is looked at again on the next run)."""
        try:
            return self._check(job)
        except stripe.RateLimitError as exc:
            classify(exc, self.requests.limiter)
            return None
        except stripe.APIError as exc:
            log.warning(
                "could not check checkout session (%s); next run",
                redact(str(exc)),
                extra={"transaction_id": job.transaction_id},
            )
            return None
        except stripe.StripeError as exc:
            return classify(exc, self.requests.limiter)

    def _check(self, job: Job) -> AttemptResult | None:
        if job.action is None:
            return None
        r = self.requests
        try:
            session = r.call(r.v1.checkout.sessions.retrieve, job.action.ref)
        except stripe.InvalidRequestError as exc:
            return AttemptResult.failure(
                "checkout_expired",
                message=f"checkout session {job.action.ref} is gone ({exc.code})",
                reference=job.action.ref,
            )
        return self._ended(session)

    def _ended(self, session: Any) -> AttemptResult | None:
        """How a session ended: paid, expired, or (complete with a payment still on its way,
        or open) None."""
        if session.status == "complete":
            if session.payment_status in _PAID:
                intent: Any = session.payment_intent
                ref = intent if isinstance(intent, str) else getattr(intent, "id", None)
                return AttemptResult.success(
                    ref or session.id, f"the customer completed checkout session {session.id}"
                )
            return self._async_outcome(session)
        if session.status == "expired":
            return AttemptResult.failure(
                "checkout_expired",
                message=f"checkout session {session.id} expired before the customer paid",
                reference=session.id,
            )
        return None  # open

    def _async_outcome(self, session: Any) -> AttemptResult | None:
        """A session completed with a payment that settles later: its PaymentIntent says how
        that payment went. None while it is on its way: no new session is made meanwhile."""
        intent: Any = session.payment_intent
        if not intent:
            return None
        if isinstance(intent, str):
            r = self.requests
            try:
                intent = r.call(r.v1.payment_intents.retrieve, intent)
            except stripe.InvalidRequestError as exc:
                log.warning(
                    "payment %s of checkout session %s not found (%s); next run",
                    intent,
                    session.id,
                    exc.code,
                )
                return None
        if intent.status == "succeeded":
            return AttemptResult.success(
                intent.id,
                f"the customer's payment for checkout session {session.id} arrived "
                "(a payment method that settles later)",
            )
        if intent.status in ("requires_payment_method", "canceled"):
            return AttemptResult.failure(
                "checkout_expired",
                message=f"the customer completed checkout session {session.id}, but the payment "
                "(a method that settles later) failed",
                reference=session.id,
            )
        return None  # processing

    def expire_action(self, job: Job) -> ActionClosed:
        """Expire the job's Checkout Session at Stripe, so the customer cannot pay it any more,
        and say how it stands: expired (now, or earlier, or gone), already paid, or completed
        with a payment still on its way. Raises AttemptInDoubt when Stripe gave no answer."""
        if job.action is None:
            return ActionClosed(Closing.EXPIRED, "no checkout session was open")
        ref, r = job.action.ref, self.requests
        try:
            try:
                session = r.call(r.v1.checkout.sessions.expire, ref)
            except stripe.InvalidRequestError as exc:  # only an open session expires
                try:
                    session = r.call(r.v1.checkout.sessions.retrieve, ref)
                except stripe.InvalidRequestError:
                    return ActionClosed(
                        Closing.EXPIRED, f"checkout session {ref} is gone at Stripe ({exc.code})"
                    )
            ended = self._ended(session)
        except stripe.StripeError as exc:
            message = redact(f"{type(exc).__name__} {exc.http_status or ''}: {exc}")
            raise AttemptInDoubt("network_error", message or "no answer from Stripe") from None
        if ended is not None and ended.succeeded:
            return ActionClosed(
                Closing.PAID, f"the customer already paid checkout session {ref}", ended
            )
        if session.status == "expired" or ended is not None:
            return ActionClosed(
                Closing.EXPIRED, f"checkout session {ref} is expired: it can no longer be paid"
            )
        if session.status == "complete":
            return ActionClosed(
                Closing.PENDING,
                f"the customer completed checkout session {ref} with a payment method that "
                "settles later; its outcome is not known yet",
            )
        raise AttemptInDoubt(
            "network_error", f"Stripe still shows checkout session {ref} as {session.status}"
        )
