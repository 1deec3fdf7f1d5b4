"""Stripe webhooks in: the endpoint secret (`whsec_...`, from the environment or a 0600 file),
each event's signature checked by the official SDK (`stripe.Webhook.construct_event`, with the
SDK's default tolerance of 5 minutes), and the event reduced to the domain's `StripeEvent`. The
secret is handed only to the SDK: never printed, never logged, masked by `payretry config`.
Also the PaymentLookup port: a PaymentIntent's status as Stripe has it now."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import stripe

from payretry.domain.card_checks import is_fingerprint
from payretry.domain.card_ledger import Network
from payretry.domain.webhooks import PaymentFailure, StripeEvent, WebhookKind
from payretry.errors import BadSignature, ConfigError, ProcessorError
from payretry.processors.stripe_classify import classify_card_failure, redact
from payretry.processors.stripe_client import StripeRequests, read_secret_file

_ID = 255  # the longest id the store keeps

_CHECKOUT = {
    "checkout.session.async_payment_succeeded": WebhookKind.CHECKOUT_PAID,
    "checkout.session.expired": WebhookKind.CHECKOUT_FAILED,
    "checkout.session.async_payment_failed": WebhookKind.CHECKOUT_FAILED,
}
_PAID = ("paid", "no_payment_required")
_CARD_EVENTS = ("payment_method.automatically_updated", "payment_method.attached")


def webhook_secret(secret: str | None, secret_file: str | None) -> str | None:
    """The endpoint secret from `[stripe] webhook_secret` (PAYRETRY_STRIPE_WEBHOOK_SECRET) or
    `webhook_secret_file` (mode 0600 enforced); None when neither is set (webhooks off)."""
    field = "stripe.webhook_secret"
    value = (secret or "").strip()
    if not value and secret_file:
        field = "stripe.webhook_secret_file"
        value = read_secret_file(secret_file, field=field, what="Stripe webhook secret")
    if not value:
        return None
    if not re.fullmatch(r"whsec_[A-Za-z0-9_]+", value):
        # Never echo it: it may be a real secret put in the wrong place.
        raise ConfigError(
            "the Stripe webhook secret must be an endpoint secret (whsec_..., letters, digits "
            "and '_' only); copy it from the endpoint's page in the Stripe Dashboard",
            field=field,
        )
    return value


def _text(value: Any, limit: int = _ID) -> str | None:
    if isinstance(value, dict):
        value = value.get("id")
    if not isinstance(value, str) or not value.strip():
        return None
    return value.strip()[:limit]


def _metadata(obj: dict[str, Any]) -> dict[str, str]:
    found = obj.get("metadata") or {}
    if not isinstance(found, dict):
        return {}
    return {str(k): str(v) for k, v in found.items() if isinstance(v, str | int | float)}


def _card(obj: Any) -> tuple[str | None, str | None]:
    """The card's network (as payretry names networks) and fingerprint, when Stripe gives both
    and the fingerprint can be no card number; else (network or None, None)."""
    card = obj.get("card") if isinstance(obj, dict) else None
    if not isinstance(card, dict):
        return None, None
    network = Network.of(_text(card.get("brand"), 16))
    if network is Network.UNKNOWN:
        return None, None
    fingerprint = _text(card.get("fingerprint"), 64)
    return network.value, fingerprint if fingerprint and is_fingerprint(fingerprint) else None


def _failure(error: Any) -> PaymentFailure | None:
    if not isinstance(error, dict):
        return None
    network, fingerprint = _card(error.get("payment_method"))
    code = _text(error.get("code"), 64) or "card_declined"
    decline = classify_card_failure(
        code=code,
        decline_code=_text(error.get("decline_code"), 64),
        advice_code=_text(error.get("advice_code"), 64),
        network_advice_code=_text(error.get("network_advice_code"), 8),
        network_decline_code=_text(error.get("network_decline_code"), 8),
        card_network=network,
        card_fingerprint=fingerprint,
        message=_text(error.get("message"), 500),
    )
    result = decline.result
    return PaymentFailure(
        error_code=result.error_code or code,
        decline_code=result.decline_code,
        message=redact(result.message),
        advice_code=decline.advice_code,
        network_advice_code=decline.network_advice_code,
        network_decline_code=decline.network_decline_code,
        card_network=result.card_network,
        card_fingerprint=decline.card_fingerprint,
    )


def parse_event(data: dict[str, Any]) -> StripeEvent:
    """A verified event's JSON as the domain reads it."""
    kind_text = str(data.get("type") or "")
    obj = (data.get("data") or {}).get("object") or {}
    if not isinstance(obj, dict):
        obj = {}
    created = datetime.fromtimestamp(int(data.get("created") or 0), UTC)
    metadata = _metadata(obj)
    base: dict[str, Any] = {
        "id": _text(data.get("id")) or "",
        "type": kind_text[:64],
        "created": created,
        "object_id": _text(obj.get("id")),
        "transaction_id": _text(metadata.get("payretry_transaction_id")),
        "attempt_key": _text(metadata.get("payretry_attempt_key"), 128),
        "metadata": metadata,
    }
    if kind_text.startswith("checkout.session."):
        kind = _CHECKOUT.get(kind_text, WebhookKind.OTHER)
        if kind_text == "checkout.session.completed":
            paid = obj.get("payment_status") in _PAID
            kind = WebhookKind.CHECKOUT_PAID if paid else WebhookKind.CHECKOUT_UNPAID
        return StripeEvent(
            kind=kind,
            checkout_session=_text(obj.get("id")),
            payment_intent=_text(obj.get("payment_intent")),
            customer=_text(obj.get("customer")),
            **base,
        )
    if kind_text in ("payment_intent.succeeded", "payment_intent.payment_failed"):
        error = obj.get("last_payment_error")
        network, fingerprint = _card((error or {}).get("payment_method") if error else None)
        amount = obj.get("amount")
        return StripeEvent(
            kind=(
                WebhookKind.PAYMENT_SUCCEEDED
                if kind_text == "payment_intent.succeeded"
                else WebhookKind.PAYMENT_FAILED
            ),
            payment_intent=_text(obj.get("id")),
            customer=_text(obj.get("customer")),
            payment_method=_text(obj.get("payment_method"))
            or _text((error or {}).get("payment_method") if error else None),
            card_network=network,
            card_fingerprint=fingerprint,
            amount_minor=amount
            if isinstance(amount, int) and not isinstance(amount, bool)
            else None,
            currency=_text(obj.get("currency"), 3),
            failure=_failure(error) if kind_text == "payment_intent.payment_failed" else None,
            **base,
        )
    if kind_text in _CARD_EVENTS:
        network, fingerprint = _card(obj)
        return StripeEvent(
            kind=WebhookKind.CARD_UPDATED,
            customer=_text(obj.get("customer")),
            payment_method=_text(obj.get("id")),
            card_network=network,
            card_fingerprint=fingerprint,
            **base,
        )
    if kind_text == "customer.updated":
        previous = (data.get("data") or {}).get("previous_attributes") or {}
        before = previous.get("invoice_settings") if isinstance(previous, dict) else None
        settings = obj.get("invoice_settings") or {}
        now = _text(settings.get("default_payment_method")) if isinstance(settings, dict) else None
        changed = (
            isinstance(before, dict)
            and "default_payment_method" in before
            and now is not None
            and _text(before.get("default_payment_method")) != now
        )
        return StripeEvent(
            kind=WebhookKind.CARD_UPDATED if changed else WebhookKind.OTHER,
            customer=_text(obj.get("id")),
            payment_method=now if changed else None,
            **base,
        )
    return StripeEvent(kind=WebhookKind.OTHER, **base)


class StripeWebhookVerifier:
    """The WebhookVerifier port: Stripe's signature checked by the official SDK."""

    def __init__(self, secret: str) -> None:
        self._secret = secret

    def __repr__(self) -> str:  # never the secret
        return "StripeWebhookVerifier(secret=***)"

    def verify(self, payload: bytes, signature: str | None) -> StripeEvent:
        try:
            event = stripe.Webhook.construct_event(payload, signature, self._secret)
        except stripe.SignatureVerificationError:
            # The SDK's message may hold the header; say only what failed.
            raise BadSignature(
                "the Stripe-Signature header is missing, wrong, stale (older than 5 minutes) "
                "or made with another endpoint secret; nothing was done",
                field="Stripe-Signature",
            ) from None
        except ValueError:  # not JSON, not UTF-8
            raise BadSignature("the body is not a Stripe event (not JSON)") from None
        data = event.to_dict()
        if not isinstance(data, dict) or not data.get("id") or not data.get("type"):
            raise BadSignature("the body is not a Stripe event (no id or type)")
        return parse_event(data)


class StripePayments:
    """The PaymentLookup port: a PaymentIntent's status at Stripe now (None: unknown)."""

    def __init__(self, requests: StripeRequests) -> None:
        self.requests = requests

    def payment_status(self, payment_intent: str) -> str | None:
        r = self.requests
        try:
            intent = r.call(r.v1.payment_intents.retrieve, payment_intent)
        except stripe.InvalidRequestError:
            return None
        except stripe.StripeError as exc:  # Stripe redelivers the event: decided then
            raise ProcessorError(
                f"could not read payment {payment_intent} from Stripe "
                f"({redact(str(exc.user_message or type(exc).__name__))})"
            ) from None
        status = getattr(intent, "status", None)
        return str(status) if status else None
