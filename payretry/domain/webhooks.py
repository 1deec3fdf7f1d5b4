"""Stripe webhooks as the domain sees them: a verified event reduced to what payretry acts on,
the record each event leaves, and the ports that verify events and keep their records. Pure.

The event table (README, "Stripe webhooks"):
- checkout.session.completed / async_payment_succeeded: the awaiting_payer job succeeds now;
- checkout.session.expired / async_payment_failed: the attempt fails as checkout_expired;
- payment_intent.succeeded for a payment a job retries: the job ends succeeded;
- payment_intent.payment_failed not made by payretry: a job is opened (`[stripe] auto_queue`);
- payment_method.automatically_updated, customer.updated (default payment method changed),
  payment_method.attached: the customer's jobs that wait for new card data are revived;
- anything else: recorded, no effect.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from payretry.domain.bound import QueueBound
from payretry.domain.changes import PaidElsewhere, Queued, Revived, Settlement
from payretry.domain.durations import iso
from payretry.domain.models import Job


class WebhookKind(StrEnum):
    CHECKOUT_PAID = "checkout_paid"  # completed (paid) or async payment succeeded
    CHECKOUT_UNPAID = "checkout_unpaid"  # completed, the async payment still on its way
    CHECKOUT_FAILED = "checkout_failed"  # expired, or the async payment failed
    PAYMENT_SUCCEEDED = "payment_succeeded"
    PAYMENT_FAILED = "payment_failed"
    CARD_UPDATED = "card_updated"  # new card data for a customer
    OTHER = "other"


# What to subscribe to in the Stripe Dashboard, and what each does (`payretry stripe webhooks`).
SUBSCRIBED: tuple[tuple[str, str], ...] = (
    ("checkout.session.completed", "the awaiting_payer job succeeds now (when paid)"),
    ("checkout.session.async_payment_succeeded", "the awaiting_payer job succeeds now"),
    (
        "checkout.session.expired",
        "the attempt fails as checkout_expired; the next session or the end, under the policy",
    ),
    (
        "checkout.session.async_payment_failed",
        "the attempt fails as checkout_expired; the next session or the end, under the policy",
    ),
    (
        "payment_intent.succeeded",
        "a job retrying that payment ends succeeded; no further attempt is sent",
    ),
    (
        "payment_intent.payment_failed",
        "a failure payretry did not make opens a job ([stripe] auto_queue = true)",
    ),
    (
        "payment_method.automatically_updated",
        "the customer's jobs waiting for new card data are revived",
    ),
    (
        "payment_method.attached",
        "the customer's jobs waiting for new card data are revived with it",
    ),
    (
        "customer.updated",
        "a new default payment method revives the customer's jobs waiting for new card data",
    ),
)
WEBHOOK_PATH = "/webhooks/stripe"


@dataclass(frozen=True, slots=True)
class PaymentFailure:
    """`last_payment_error` of a failed PaymentIntent, classified as payretry reads a decline
    (`error_code`, `decline_code`: advice wins over the decline code), with the card network's
    own codes and the card's brand and fingerprint (never card data)."""

    error_code: str
    decline_code: str | None
    message: str | None
    advice_code: str | None = None
    network_advice_code: str | None = None
    network_decline_code: str | None = None
    card_network: str | None = None
    card_fingerprint: str | None = None


@dataclass(frozen=True, slots=True)
class StripeEvent:
    """A verified Stripe event, reduced to what payretry acts on."""

    id: str
    type: str
    kind: WebhookKind
    created: datetime
    object_id: str | None = None
    payment_intent: str | None = None
    checkout_session: str | None = None
    transaction_id: str | None = None  # the payretry_transaction_id metadata
    attempt_key: str | None = None  # the payretry_attempt_key metadata
    customer: str | None = None
    payment_method: str | None = None
    card_network: str | None = None
    card_fingerprint: str | None = None
    amount_minor: int | None = None
    currency: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    failure: PaymentFailure | None = None

    @property
    def made_by_payretry(self) -> bool:
        """Something payretry created (its metadata is on it)."""
        return bool(self.transaction_id or self.attempt_key)


@dataclass(frozen=True, slots=True)
class WebhookRecord:
    """What one event did, as recorded (once per event id) in the transaction of its effect."""

    event_id: str
    type: str
    received_at: datetime
    created: datetime
    effect: str
    applied: bool = False
    object_id: str | None = None
    job_id: str | None = None
    transaction_id: str | None = None
    duplicate: bool = False  # a redelivery: nothing was done (not stored as such)

    def as_dict(self) -> dict[str, object]:
        return {
            "event_id": self.event_id,
            "type": self.type,
            "received_at": iso(self.received_at),
            "created": iso(self.created),
            "effect": self.effect,
            "applied": self.applied,
            "object_id": self.object_id,
            "job_id": self.job_id,
            "transaction_id": self.transaction_id,
            "duplicate": self.duplicate,
        }


# The changes one event may make, written with its record in one transaction.
WebhookChange = Settlement | PaidElsewhere | Revived | Queued


class Written(StrEnum):
    APPLIED = "applied"  # the record and every change, in one transaction
    DUPLICATE = "duplicate"  # the event id was recorded already: nothing written
    CHANGED = "changed"  # a job changed meanwhile (a fence lost): nothing written; look again


class WebhookVerifier(Protocol):
    """Checks an event's signature (`Stripe-Signature`) and reads it; BadSignature when the
    signature is missing, wrong, stale or made with another secret."""

    def verify(self, payload: bytes, signature: str | None) -> StripeEvent: ...


class PaymentLookup(Protocol):
    """A PaymentIntent's current status at the processor (out-of-order events are decided on
    the object as it is now)."""

    def payment_status(self, payment_intent: str) -> str | None: ...


class WebhookStore(Protocol):
    def webhook_recorded(self, event_id: str) -> bool: ...

    def record_webhook(
        self,
        record: WebhookRecord,
        changes: Sequence[WebhookChange] = (),
        *,
        bound: QueueBound | None = None,
    ) -> Written:
        """Record the event and make its changes, in one transaction (all or nothing); a job
        it opens meets `bound` ([queue] max_active) as a queued one does (QueueFull)."""
        ...

    def payment_succeeded_seen(self, payment_intent: str) -> bool:
        """A payment_intent.succeeded for this PaymentIntent was recorded already."""
        ...

    def jobs_for_payment(self, payment_intent: str) -> list[Job]:
        """Jobs retrying this PaymentIntent, newest first (with attempts)."""
        ...

    def job_for_session(self, checkout_session: str) -> Job | None:
        """The job waiting on (or created from) this Checkout Session, newest first."""
        ...

    def jobs_for_customer(self, customer: str, *, limit: int = 100) -> list[Job]:
        """A customer's jobs that new card data might revive (failed, blocked, scheduled)."""
        ...

    def webhooks_for_job(self, job_id: str, event_ids: Sequence[str] = ()) -> list[WebhookRecord]:
        """The events that were about the job (or are named in `event_ids`), oldest first."""
        ...
