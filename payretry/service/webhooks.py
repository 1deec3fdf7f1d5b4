"""Stripe webhooks in: each verified event does what the event table says (domain/webhooks.py),
once. The event's record and its changes are written in one transaction; a redelivered event
finds its record and does nothing; an event is decided on the job as it is now (and, for a
failure payretry did not make, on the PaymentIntent as Stripe has it now), never on the order
events arrive in. Polling stays the fallback: whichever settles first wins, the other finds the
job moved on and does nothing."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from payretry.domain.bound import QueueFull
from payretry.domain.changes import PaidElsewhere, Revived, Settlement
from payretry.domain.models import PAID_ELSEWHERE_FROM, Job, JobState
from payretry.domain.policy import RetryPolicy
from payretry.domain.ports import Store
from payretry.domain.results import AttemptResult
from payretry.domain.revival import revivable
from payretry.domain.webhooks import (
    PaymentLookup,
    StripeEvent,
    WebhookChange,
    WebhookKind,
    WebhookRecord,
    WebhookStore,
    WebhookVerifier,
    Written,
)
from payretry.errors import InvalidInput, Refused, StoreError
from payretry.service.intake import new_job, reported_advice
from payretry.service.operations import Operations

log = logging.getLogger("payretry")
_TRIES = 5  # a job that keeps changing under an event: Stripe redelivers later


@dataclass(frozen=True, slots=True)
class _Plan:
    effect: str
    changes: Sequence[WebhookChange] = ()
    job: Job | None = None


class StripeWebhooks:
    def __init__(
        self,
        store: Store,
        hooks: WebhookStore,
        verifier: WebhookVerifier,
        policy: RetryPolicy,
        operations: Operations,
        *,
        clock: Callable[[], datetime],
        auto_queue: bool = False,
        payments: PaymentLookup | None = None,
        default_window: timedelta | None = None,
    ) -> None:
        self.store = store
        self.hooks = hooks
        self.verifier = verifier
        self.policy = policy
        self.operations = operations
        self.clock = clock
        self.auto_queue = auto_queue
        self.payments = payments
        self.default_window = default_window

    def receive(self, payload: bytes, signature: str | None) -> WebhookRecord:
        """Verify and act on one delivery; BadSignature (nothing done) when it is not Stripe's."""
        event = self.verifier.verify(payload, signature)
        return self.handle(event)

    def handle(self, event: StripeEvent) -> WebhookRecord:
        for _ in range(_TRIES):
            now = self.clock()
            if self.hooks.webhook_recorded(event.id):
                return self._duplicate(event, now)
            plan = self._plan(event, now)
            job = plan.job
            record = WebhookRecord(
                event_id=event.id,
                type=event.type,
                received_at=now,
                created=event.created,
                effect=plan.effect,
                applied=bool(plan.changes),
                object_id=event.object_id,
                job_id=job.id if job is not None else None,
                transaction_id=job.transaction_id if job is not None else event.transaction_id,
            )
            try:
                written = self.hooks.record_webhook(
                    record, plan.changes, bound=self.operations.bound
                )
            except QueueFull as exc:  # [queue] max_active: the job it would open is the lowest
                record = replace(record, effect=f"not queued: {exc}", applied=False)
                written = self.hooks.record_webhook(record)
            if written is Written.APPLIED:
                log.info(
                    "stripe event %s (%s): %s",
                    event.id,
                    event.type,
                    plan.effect,
                    extra={"transaction_id": record.transaction_id}
                    if record.transaction_id
                    else {},
                )
                return record
            if written is Written.DUPLICATE:
                return self._duplicate(event, now)
            # A job changed meanwhile (a runner, the poll, another delivery): decide again.
        raise StoreError(f"the jobs of Stripe event {event.id} kept changing; Stripe redelivers it")

    def _duplicate(self, event: StripeEvent, now: datetime) -> WebhookRecord:
        return WebhookRecord(
            event.id,
            event.type,
            now,
            event.created,
            "already received: nothing done again",
            object_id=event.object_id,
            duplicate=True,
        )

    # -- the event table ---------------------------------------------------------------------

    def _plan(self, event: StripeEvent, now: datetime) -> _Plan:
        kind = event.kind
        if kind in (WebhookKind.CHECKOUT_PAID, WebhookKind.CHECKOUT_UNPAID):
            return self._checkout_paid(event, now)
        if kind is WebhookKind.CHECKOUT_FAILED:
            return self._checkout_failed(event, now)
        if kind is WebhookKind.PAYMENT_SUCCEEDED:
            return self._payment_succeeded(event, now)
        if kind is WebhookKind.PAYMENT_FAILED:
            return self._payment_failed(event, now)
        if kind is WebhookKind.CARD_UPDATED:
            return self._card_updated(event, now)
        return _Plan(f"{event.type}: not an event payretry acts on; recorded, no effect")

    def _job_of_session(self, event: StripeEvent) -> Job | None:
        job = self.hooks.job_for_session(event.checkout_session or "")
        if job is None and event.transaction_id:
            job = self.store.find(event.transaction_id)
        return job

    def _paid_elsewhere(self, job: Job, event: StripeEvent, reference: str, now: datetime) -> _Plan:
        paid = PaidElsewhere(job, reference, event.id, event.type, now)
        effect = (
            f"the {job.state.value} job ended succeeded with reference {reference}; no further "
            "attempt is sent"
        )
        if job.state is JobState.RUNNING:
            effect += f" (attempt {paid.number} in flight: its late outcome is not recorded)"
        return _Plan(effect, [paid], job)

    def _ended(self, job: Job, what: str) -> _Plan:
        if job.state is JobState.SUCCEEDED:
            return _Plan(f"the job had already succeeded: nothing to do ({what})", (), job)
        log.warning(
            "a payment was made for a job that had ended (%s): reconcile it by hand",
            job.state.value,
            extra={"transaction_id": job.transaction_id},
        )
        return _Plan(
            f"the job is {job.state.value}, yet {what}: nothing retried; reconcile it by hand "
            "(fulfil or refund)",
            (),
            job,
        )

    def _checkout_paid(self, event: StripeEvent, now: datetime) -> _Plan:
        session = event.checkout_session or "?"
        job = self._job_of_session(event)
        if job is None:
            return _Plan(f"no job waits on checkout session {session}; no effect")
        if event.kind is WebhookKind.CHECKOUT_UNPAID:
            return _Plan(
                f"checkout session {session} completed, its payment still on its way "
                "(payment_status unpaid): the job waits for the async outcome",
                (),
                job,
            )
        reference = event.payment_intent or session
        if job.state is JobState.AWAITING_PAYER and job.action and job.action.ref == session:
            result = AttemptResult.success(
                reference, f"the customer completed checkout session {session} (Stripe {event.id})"
            )
            decision = self.policy.decide(job, job.attempt_count, result, now)
            return _Plan(
                f"the awaiting_payer job succeeded: attempt {job.attempt_count} paid by checkout "
                f"session {session} (reference {reference})",
                [Settlement(job, result, decision, now)],
                job,
            )
        if job.state in PAID_ELSEWHERE_FROM:
            return self._paid_elsewhere(job, event, reference, now)
        return self._ended(job, f"checkout session {session} was paid")

    def _checkout_failed(self, event: StripeEvent, now: datetime) -> _Plan:
        session = event.checkout_session or "?"
        job = self._job_of_session(event)
        if job is None:
            return _Plan(f"no job waits on checkout session {session}; no effect")
        if not (job.state is JobState.AWAITING_PAYER and job.action and job.action.ref == session):
            return _Plan(
                f"the job no longer waits on checkout session {session} (it is "
                f"{job.state.value}): no effect",
                (),
                job,
            )
        what = "expired" if event.type.endswith("expired") else "had its async payment fail"
        result = AttemptResult.failure(
            "checkout_expired",
            message=f"checkout session {session} {what} before the customer paid",
            reference=session,
        )
        decision = self.policy.decide(job, job.attempt_count, result, now)
        return _Plan(
            f"checkout session {session} {what}: attempt {job.attempt_count} failed as "
            f"checkout_expired; {decision.reason}",
            [Settlement(job, result, decision, now)],
            job,
        )

    def _jobs_of_payment(self, event: StripeEvent) -> list[Job]:
        jobs = self.hooks.jobs_for_payment(event.payment_intent or "")
        if event.transaction_id:
            found = self.store.find(event.transaction_id)
            if found is not None and all(j.id != found.id for j in jobs):
                jobs.append(found)
        # The active one first: the one a payment made elsewhere must stop.
        return sorted(jobs, key=lambda j: (j.state not in PAID_ELSEWHERE_FROM, -j.seq))

    def _payment_succeeded(self, event: StripeEvent, now: datetime) -> _Plan:
        pi = event.payment_intent or "?"
        jobs = self._jobs_of_payment(event)
        if not jobs:
            return _Plan(f"no job retries payment {pi}; no effect")
        job = jobs[0]
        if job.state in PAID_ELSEWHERE_FROM:
            return self._paid_elsewhere(job, event, pi, now)
        return self._ended(job, f"payment {pi} succeeded")

    def _payment_failed(self, event: StripeEvent, now: datetime) -> _Plan:
        pi = event.payment_intent or "?"
        jobs = self._jobs_of_payment(event)
        if jobs:
            job = jobs[0]
            return _Plan(
                f"a job already retries payment {pi} (it is {job.state.value}): no effect",
                (),
                job,
            )
        if event.made_by_payretry:
            return _Plan(f"payment {pi} was made by payretry: its attempt records its outcome")
        if self.hooks.payment_succeeded_seen(pi):
            return _Plan(f"payment {pi} has succeeded since (events out of order): nothing queued")
        if not self.auto_queue:
            return _Plan(
                f"a failure of payment {pi} not made by payretry; [stripe] auto_queue is off: "
                "recorded, not queued"
            )
        if self.payments is not None:
            status = self.payments.payment_status(pi)
            if status != "requires_payment_method":
                return _Plan(f"payment {pi} is {status or 'unknown'} at Stripe now: nothing queued")
        try:
            request = new_job(self._fields(event), now=now, default_window=self.default_window)
            active = self.store.active_for([request.transaction_id]).get(request.transaction_id)
            if active is not None:
                return _Plan(
                    f"a job is already active for transaction {request.transaction_id}: no effect",
                    (),
                    active,
                )
            queued = self.operations.prepare(request, now)
        except (InvalidInput, Refused) as exc:
            return _Plan(f"payment {pi} failed, not queued: {exc}")
        job = queued.job
        return _Plan(
            f"queued a job for transaction {job.transaction_id} from payment {pi}'s failure "
            f"({job.error_code}{'/' + job.decline_code if job.decline_code else ''}): "
            f"{job.reason}",
            [queued],
            job,
        )

    def _fields(self, event: StripeEvent) -> dict[str, Any]:
        failure = event.failure
        meta = event.metadata
        pi = event.payment_intent
        user = meta.get("user_id") or meta.get("userId") or event.customer or pi
        kept = {
            k: v
            for k, v in meta.items()
            if not k.startswith("payretry_") and k not in ("transaction_id", "user_id", "userId")
        }
        return {
            "transaction_id": meta.get("transaction_id") or pi,
            "user_id": user,
            "amount_minor": event.amount_minor,
            "currency": (event.currency or "").upper(),
            "error_code": failure.error_code if failure else "card_declined",
            "decline_code": failure.decline_code if failure else None,
            "error_message": failure.message if failure else None,
            "payment_intent": pi,
            "customer": event.customer,
            "payment_method": event.payment_method,
            "card_network": failure.card_network if failure else None,
            "card_fingerprint": (
                failure.card_fingerprint if failure and failure.card_network else None
            ),
            # What the failure advised: its first retry waits or stops as the network says.
            **reported_advice(
                failure.advice_code if failure else None,
                failure.network_advice_code if failure else None,
                failure.network_decline_code if failure else None,
            ),
            "metadata": kept,
        }

    def _card_updated(self, event: StripeEvent, now: datetime) -> _Plan:
        customer, pm = event.customer, event.payment_method
        if not customer or not pm:
            return _Plan(f"{event.type} names no customer and payment method: no effect")
        changes: list[WebhookChange] = []
        skipped: list[str] = []
        first: Job | None = None
        for job in self.hooks.jobs_for_customer(customer):
            try:
                why = revivable(job, now, self.policy.cap)
                if job.state.final and self.store.active_for([job.transaction_id]):
                    raise Refused(f"another job is active for {job.transaction_id}")
            except Refused:
                skipped.append(job.transaction_id)
                continue
            network, fingerprint = event.card_network, event.card_fingerprint
            if not (network and fingerprint):
                network = fingerprint = None
            changes.append(Revived(job, pm, customer, network, fingerprint, event.id, why, now))
            first = first or job
        if not changes:
            return _Plan(
                f"no job of customer {customer} waits for new card data: no effect", (), None
            )
        names = ", ".join(sorted(c.job.transaction_id for c in changes if isinstance(c, Revived)))
        return _Plan(
            f"revived {len(changes)} job(s) with payment method {pm}: {names}; each attempts "
            "again now",
            changes,
            first if len(changes) == 1 else None,
        )
