"""Stripe Billing's own retries: is a payment already retried by Stripe?

A PaymentIntent that pays a Stripe invoice is retried by Stripe Billing itself (Smart Retries or
a custom schedule) while the invoice is open, charged automatically and has a next payment
attempt. payretry retrying it too would be two engines retrying one payment: twice the
reattempts the networks count (and fine), and a double charge when both succeed. So such a job
is refused at queue time.

Since API version 2025-03-31.basil a PaymentIntent no longer names its invoice: the link is
an InvoicePayment (`GET /v1/invoice_payments?payment[type]=payment_intent&payment[payment_intent]=
pi_...`), whose invoice is then read for its `status`, `collection_method`, `auto_advance` and
`next_payment_attempt` (docs.stripe.com/api/invoice-payment/list, /api/invoices/object).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import stripe

from payretry.domain.durations import iso
from payretry.domain.models import NewJob
from payretry.errors import ProcessorError
from payretry.processors.stripe_classify import redact
from payretry.processors.stripe_client import StripeRequests


def retried_by_billing(invoice: Any) -> bool:
    """Stripe will attempt the invoice again by itself."""
    return (
        getattr(invoice, "status", None) == "open"
        and getattr(invoice, "collection_method", None) == "charge_automatically"
        and getattr(invoice, "auto_advance", None) is not False
        and getattr(invoice, "next_payment_attempt", None) is not None
    )


class BillingRetries:
    """The RetriedElsewhere port for Stripe: two reads per job that names a PaymentIntent."""

    def __init__(self, requests: StripeRequests) -> None:
        self.requests = requests

    def retried_elsewhere(self, request: NewJob) -> str | None:
        intent = request.refs.payment_intent
        if not intent:
            return None
        v1 = self.requests.v1
        try:
            payments = self.requests.call(
                v1.invoice_payments.list,
                {"payment": {"type": "payment_intent", "payment_intent": intent}, "limit": 10},
            )
            for payment in payments.data:
                invoice_id = payment.invoice
                if not isinstance(invoice_id, str):
                    invoice_id = invoice_id.id
                invoice = self.requests.call(v1.invoices.retrieve, invoice_id)
                if retried_by_billing(invoice):
                    at = datetime.fromtimestamp(int(invoice.next_payment_attempt), UTC)
                    return (
                        f"payment intent {intent} pays Stripe invoice {invoice.id}, which Stripe "
                        f"Billing is retrying itself (next attempt {iso(at)})"
                    )
        except stripe.StripeError as exc:
            raise ProcessorError(
                f"could not ask Stripe whether payment intent {intent} is retried by Stripe "
                f"Billing ({redact(str(exc.user_message or exc))}); nothing queued"
            ) from None
        return None
