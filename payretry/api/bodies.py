"""Request bodies. Both shapes are accepted: the seed's (`error {code, message, decline_code}`,
`metadata {userId, amount, currency, paymentIntentId, ...}`; `transactionId` and
`paymentRequest {...}` for process) and the CLI's field names. Each is turned into the same
fields `payretry queue` validates (service/intake.py), so the same rules and the same errors
apply; an error names the field as the request spelled it. Unknown fields are refused."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from payretry.domain.models import NewJob
from payretry.errors import InvalidInput
from payretry.service.intake import new_job
from payretry.service.process import PENDING_CODE

Amount = str | int | float
MetaValue = str | int | float | bool | None


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


_ADVICE = "Stripe's advice code: try_again_later, do_not_try_again or confirm_card_data"
_MAC = "The card network's advice code (Mastercard's MAC: 27 waits 4 days, 03 never)"
_RESPONSE = "The issuer's response code (network_decline_code: Visa category 1 never)"


class SeedError(Body):
    code: str
    message: str | None = None
    decline_code: str | None = None
    advice_code: str | None = Field(None, description=_ADVICE)
    network_advice_code: str | None = Field(None, description=_MAC)
    network_decline_code: str | None = Field(None, description=_RESPONSE)


class JobFields(Body):
    """The CLI's fields (`payretry queue --help`), all optional here."""

    user_id: str | None = None
    amount: Amount | None = Field(None, description='Decimal major units, "99.99"')
    amount_minor: int | None = None
    currency: str | None = None
    payment_intent: str | None = None
    customer: str | None = None
    payment_method: str | None = None
    card_network: str | None = Field(None, description="visa, mastercard, amex, ...")
    card_fingerprint: str | None = Field(
        None, description="The processor's card fingerprint (an opaque id; never card data)"
    )
    window: str | None = Field(None, description="Payment window from now: 24h")
    expires_at: str | None = None
    priority: int | None = None
    metadata: dict[str, MetaValue] | None = Field(
        None,
        description="Free metadata; the seed's userId, amount, currency, paymentIntentId, "
        "customerId, paymentMethodId and checkoutSessionId keys are read as those fields",
    )


class QueueBody(JobFields):
    transaction_id: str | None = Field(None, description="If given, the path's")
    error: SeedError | None = None
    error_code: str | None = None
    decline_code: str | None = None
    error_message: str | None = None
    checkout_session: str | None = None
    advice_code: str | None = Field(None, description=_ADVICE)
    network_advice_code: str | None = Field(None, description=_MAC)
    network_decline_code: str | None = Field(None, description=_RESPONSE)


class PaymentRequest(Body):
    """Seed 000's paymentRequest."""

    userId: str | None = None  # noqa: N815 - the seed's names
    amount: Amount | None = None
    currency: str | None = None
    paymentMethodId: str | None = None  # noqa: N815
    customerId: str | None = None  # noqa: N815
    paymentIntentId: str | None = None  # noqa: N815
    description: str | None = None
    metadata: dict[str, MetaValue] | None = None


class ProcessBody(JobFields):
    transactionId: str | None = None  # noqa: N815
    transaction_id: str | None = None
    paymentRequest: PaymentRequest | None = None  # noqa: N815


_SEED_META = {
    "userId": "user_id",
    "amount": "amount",
    "currency": "currency",
    "paymentIntentId": "payment_intent",
    "customerId": "customer",
    "paymentMethodId": "payment_method",
    "checkoutSessionId": "checkout_session",
}


def amount_text(value: Any) -> Any:
    """The seed sends amounts as JSON numbers: a number becomes its shortest decimal form
    (99.99 -> "99.99", 1000 -> "1000"); a decimal string passes as it is (exact)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return value
    if isinstance(value, int):
        return str(value)
    if value != value or value in (float("inf"), float("-inf")):
        return str(value)
    text = format(Decimal(repr(value)), "f")
    return text[:-2] if text.endswith(".0") else text


class Fields:
    """Fields for intake, remembering how the request spelled each one."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self.origin: dict[str, str] = {}

    def put(self, name: str, value: Any, spelled: str) -> None:
        if value is None:
            return
        if name in self.values and self.values[name] != value:
            raise InvalidInput(f"given twice (also as {self.origin[name]})", field=spelled)
        self.values[name] = value
        self.origin[name] = spelled

    def common(self, body: JobFields, metadata: Mapping[str, MetaValue] | None, where: str) -> None:
        for name in (
            "user_id",
            "amount_minor",
            "currency",
            "payment_intent",
            "customer",
            "payment_method",
            "card_network",
            "card_fingerprint",
            "window",
            "expires_at",
            "priority",
        ):
            self.put(name, getattr(body, name), name)
        self.put("amount", amount_text(body.amount), "amount")
        free: dict[str, Any] = {}
        for key, value in (metadata or {}).items():
            if key in _SEED_META:
                target = _SEED_META[key]
                self.put(
                    target, amount_text(value) if target == "amount" else value, f"{where}.{key}"
                )
            elif value is not None:
                free[key] = str(value).lower() if isinstance(value, bool) else value
        if free:
            self.values["metadata"] = {**self.values.get("metadata", {}), **free}

    def job(self, now: datetime, default_window: timedelta | None) -> NewJob:
        try:
            return new_job(self.values, now=now, default_window=default_window)
        except InvalidInput as exc:
            exc.field = self.origin.get(exc.field or "", exc.field)
            raise


_ADVICE_FIELDS = ("advice_code", "network_advice_code", "network_decline_code")


def queue_fields(transaction_id: str, body: QueueBody) -> Fields:
    fields = Fields()
    fields.put("transaction_id", transaction_id, "transactionId")
    fields.put("transaction_id", body.transaction_id, "transaction_id")
    if body.error is not None:
        fields.put("error_code", body.error.code, "error.code")
        fields.put("error_message", body.error.message, "error.message")
        fields.put("decline_code", body.error.decline_code, "error.decline_code")
        for name in _ADVICE_FIELDS:
            fields.put(name, getattr(body.error, name), f"error.{name}")
    fields.put("error_code", body.error_code, "error_code")
    fields.put("decline_code", body.decline_code, "decline_code")
    fields.put("error_message", body.error_message, "error_message")
    fields.put("checkout_session", body.checkout_session, "checkout_session")
    for name in _ADVICE_FIELDS:
        fields.put(name, getattr(body, name), name)
    fields.common(body, body.metadata, "metadata")
    if "error_code" not in fields.values:
        raise InvalidInput("is required", field="error.code")
    return fields


def process_fields(body: ProcessBody) -> Fields:
    fields = Fields()
    fields.put("transaction_id", body.transactionId, "transactionId")
    fields.put("transaction_id", body.transaction_id, "transaction_id")
    if "transaction_id" not in fields.values:
        raise InvalidInput("is required", field="transactionId")
    fields.values["error_code"] = PENDING_CODE
    request = body.paymentRequest
    if request is not None:
        fields.put("user_id", request.userId, "paymentRequest.userId")
        fields.put("amount", amount_text(request.amount), "paymentRequest.amount")
        fields.put("currency", request.currency, "paymentRequest.currency")
        fields.put("payment_method", request.paymentMethodId, "paymentRequest.paymentMethodId")
        fields.put("customer", request.customerId, "paymentRequest.customerId")
        fields.put("payment_intent", request.paymentIntentId, "paymentRequest.paymentIntentId")
        meta = dict(request.metadata or {})
        if request.description is not None:
            meta["description"] = request.description
        fields.common(body, meta, "paymentRequest.metadata")
    else:
        fields.common(body, body.metadata, "metadata")
    if request is not None and body.metadata:
        fields.common(JobFields(), body.metadata, "metadata")
    refs = fields.values
    if not refs.get("payment_intent") and not (refs.get("customer") and refs.get("payment_method")):
        raise InvalidInput(
            "name a payment intent, or a customer and a payment method, to charge",
            field="paymentRequest.paymentMethodId" if request is not None else "payment_method",
        )
    return fields


class TokenBody(Body):
    role: str
    name: str
    transaction_id: str | None = None
    ttl: str | None = Field(None, description="Lifetime: 24h, 30d (customer tokens need one)")


class CustomerTokenBody(Body):
    transaction_id: str
    ttl: str | None = Field(None, description="Lifetime (default [http] customer_token_ttl)")
    name: str | None = None


class UpdateBody(Body):
    """New card data for a job: the payment method to attempt with (and its customer)."""

    payment_method: str = Field(description="The new payment method, pm_...")
    customer: str | None = Field(None, description="Its customer, cus_... (else the job's)")
