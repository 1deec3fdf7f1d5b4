"""What goes to a processor and what comes back: the request for one attempt, its result, and
the one exception that says the outcome is unknown."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from payretry.domain.models import CustomerAction, Job
from payretry.domain.network_rules import advice_of


@dataclass(frozen=True, slots=True)
class AttemptRequest:
    """One attempt as the processor is asked to make it: nothing has to be parsed back out of
    the key. `sent_at` is when the attempt was first sent (a re-send keeps the first time, so it
    can ask for exactly the same thing); `resent` says an earlier run sent it already (its row
    was left pending by a crash or a lost connection)."""

    job: Job
    number: int
    idempotency_key: str
    sent_at: datetime
    resent: bool = False


@dataclass(frozen=True, slots=True)
class AttemptResult:
    """What a processor says of one attempt: success with a reference, or a classified failure,
    or (checkout) an action the customer must complete before the attempt has an outcome.

    `retry_after`: the processor asks the whole run to slow down (it answered 429).
    `notify`: a message for the customer (update the card, authenticate, complete checkout).
    The card network's own codes and the card's identity, when the processor reports them (the
    card ledger records them; the network rules read them): `advice_code` (the processor's),
    `network_advice_code` (Mastercard's MAC), `network_decline_code` (the issuer's response
    code), `card_network` and `card_fingerprint` (an opaque id; never card data).
    """

    succeeded: bool
    reference: str | None = None
    error_code: str | None = None
    decline_code: str | None = None
    message: str | None = None
    retry_after: float | None = None
    notify: str | None = None
    action: CustomerAction | None = None
    advice_code: str | None = None
    network_advice_code: str | None = None
    network_decline_code: str | None = None
    card_network: str | None = None
    card_fingerprint: str | None = None

    @property
    def awaiting(self) -> bool:
        return self.action is not None

    @classmethod
    def success(cls, reference: str | None = None, message: str | None = None) -> AttemptResult:
        return cls(True, reference=reference, message=message)

    @classmethod
    def failure(
        cls,
        error_code: str,
        decline_code: str | None = None,
        message: str | None = None,
        *,
        reference: str | None = None,
        retry_after: float | None = None,
        notify: str | None = None,
    ) -> AttemptResult:
        return cls(
            False,
            reference=reference,
            error_code=error_code,
            decline_code=decline_code,
            message=message,
            retry_after=retry_after,
            notify=notify,
        )

    @classmethod
    def awaiting_customer(
        cls, action: CustomerAction, notify: str, message: str | None = None
    ) -> AttemptResult:
        return cls(False, reference=action.ref, message=message, notify=notify, action=action)

    @classmethod
    def queued_after(cls, job: Job) -> AttemptResult:
        """The failure a job was queued after: what its first retry is decided on. With its
        advice (`job.advice`), read as a decline from the processor is read: the advice wins
        over the decline code (the stricter of Stripe's and the MAC's), and the network's codes
        come with it, for the card-network rules."""
        advice = job.advice
        if not advice:
            return cls.failure(job.error_code, job.decline_code, job.error_message)
        advised = advice_of(advice.advice_code, advice.network_advice_code)
        return replace(
            cls.failure(job.error_code, advised or job.decline_code, job.error_message),
            advice_code=advice.advice_code,
            network_advice_code=advice.network_advice_code,
            network_decline_code=advice.network_decline_code,
        )


class AttemptInDoubt(Exception):
    """The request may or may not have reached the processor (a connection error, a timeout, a
    concurrent request under the same key). The attempt keeps its pending row and its lease
    lapses: the rescue returns the job and the same idempotency key is sent again."""

    def __init__(self, error_code: str, message: str) -> None:
        super().__init__(message)
        self.error_code = error_code
        self.message = message


class Closing(StrEnum):
    """What closing a customer's action (expiring a Checkout Session) found."""

    EXPIRED = "expired"  # nobody can pay it now: expired here, or it had already ended unpaid
    PAID = "paid"  # the customer had already paid: the attempt succeeded
    PENDING = "pending"  # completed with a payment method that settles later: not yet known


@dataclass(frozen=True, slots=True)
class ActionClosed:
    """The processor's answer to "close this action": how it stands now, in a sentence
    (`detail`), and for `paid` the attempt's success (`result`, with its reference)."""

    closing: Closing
    detail: str
    result: AttemptResult | None = None
