"""Stripe webhooks in the store: each event's record (by id, so a redelivery does nothing
twice) written in one transaction with its changes (a settled checkout, a payment made
elsewhere, revived jobs, a new job) and their outbox entries; the lookups the events need."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

from sqlalchemy import Connection, or_, select, update
from sqlalchemy.exc import IntegrityError

from payretry.domain.bound import QueueBound
from payretry.domain.card_checks import job_card
from payretry.domain.changes import PaidElsewhere, Queued, Revived, Settlement
from payretry.domain.models import (
    PAID_ELSEWHERE_FROM,
    REVIVABLE_FROM,
    AttemptOutcome,
    Job,
    JobState,
    check_transition,
)
from payretry.domain.webhooks import WebhookChange, WebhookRecord, Written
from payretry.errors import NotFound, Refused
from payretry.store.analytics import write_rollups
from payretry.store.bound import make_room
from payretry.store.cards import settle_elsewhere, write_links
from payretry.store.counts import reopen
from payretry.store.outbox import write_entries
from payretry.store.rows import attempt_outcome, job_values
from payretry.store.tables import ATTEMPTS, JOBS, STRIPE_EVENTS

_REVIVABLE = [s.value for s in REVIVABLE_FROM]
_SUCCEEDED = "payment_intent.succeeded"


class _Changed(Exception):
    """A job changed since the caller looked: nothing of the transaction is kept."""


class _Duplicate(Exception):
    """The event id was recorded already."""


class _Store(Protocol):
    dialect: str
    _insert: Callable[..., Any]

    def _tx(self, *, readonly: bool = False) -> AbstractContextManager[Connection]: ...

    def _jobs(self, conn: Connection, rows: Sequence[Any], with_attempts: bool) -> list[Job]: ...

    def _write_cards(self, conn: Connection, queued: Sequence[Queued]) -> None: ...


def settle_one(conn: Connection, s: Settlement) -> bool:
    """How a customer's action ended, fenced by the job still awaiting that same attempt."""
    check_transition(JobState.AWAITING_PAYER, s.decision.state)
    job, number = s.job, s.job.attempt_count
    done = conn.execute(
        update(JOBS)
        .where(
            JOBS.c.seq == job.seq,
            JOBS.c.state == JobState.AWAITING_PAYER.value,
            JOBS.c.attempt_count == number,
        )
        .values(
            state=s.decision.state.value,
            max_attempts=s.decision.max_attempts or job.max_attempts,
            next_retry_at=s.decision.next_retry_at,
            reason=s.decision.reason,
            policy_code=s.decision.row.code,
            action_ref=None,
            action_url=None,
            action_expires_at=None,
            updated_at=s.finished_at,
        )
    ).rowcount
    if not done:
        return False
    conn.execute(
        update(ATTEMPTS)
        .where(ATTEMPTS.c.job_seq == job.seq, ATTEMPTS.c.number == number)
        .values(
            outcome=attempt_outcome(s.result).value,
            finished_at=s.finished_at,
            error_code=s.result.error_code,
            decline_code=s.result.decline_code,
            message=s.result.message,
            reference=s.result.reference,
            decision=s.decision.outcome.value,
            next_retry_at=s.decision.next_retry_at,
        )
    )
    write_entries(conn, [s.entry])
    write_rollups(conn, s.rollups)
    return True


def _seen(job: Job) -> tuple[Any, ...]:
    """The fence of a change made on a job as the caller saw it."""
    return (
        JOBS.c.seq == job.seq,
        JOBS.c.state == job.state.value,
        JOBS.c.attempt_count == job.attempt_count,
    )


def pay_elsewhere(conn: Connection, paid: PaidElsewhere) -> bool:
    """The job ends succeeded, whatever active state it was seen in; a running attempt's lease
    goes with it, so that attempt's late outcome is never recorded."""
    job = paid.job
    if job.state not in PAID_ELSEWHERE_FROM:
        raise Refused(f"a {job.state.value} job cannot be settled as paid elsewhere")
    number = paid.open_attempt
    done = conn.execute(
        update(JOBS)
        .where(*_seen(job))
        .values(
            state=JobState.SUCCEEDED.value,
            attempt_count=number if number is not None else job.attempt_count,
            next_retry_at=None,
            reason=paid.reason,
            lease_token=None,
            lease_expires_at=None,
            rescues=0,
            action_ref=None,
            action_url=None,
            action_expires_at=None,
            updated_at=paid.at,
        )
    ).rowcount
    if not done:
        return False
    if number is not None:
        conn.execute(
            update(ATTEMPTS)
            .where(
                ATTEMPTS.c.job_seq == job.seq,
                ATTEMPTS.c.number == number,
                ATTEMPTS.c.outcome.in_(
                    [AttemptOutcome.PENDING.value, AttemptOutcome.AWAITING.value]
                ),
            )
            .values(
                outcome=AttemptOutcome.SUCCEEDED.value,
                finished_at=paid.at,
                reference=paid.reference,
                message=f"settled by Stripe event {paid.by} ({paid.what})",
                decision="succeeded",
                next_retry_at=None,
            )
        )
    card = paid.card_entry
    if card is not None:
        key, attempt = card
        settle_elsewhere(conn, key, job.id, attempt, paid.at)
    write_entries(conn, [paid.entry])
    write_rollups(conn, paid.rollups)
    return True


def reopen_for(conn: Connection, revivals: Sequence[Revived]) -> None:
    """Revived jobs were final: take them (and the newer jobs) out of the sealed counts first,
    before any row is written (store/counts.py reopen)."""
    seqs = [r.job.seq for r in revivals if r.job.seq is not None]
    if seqs:
        reopen(conn, min(seqs))


def revive_one(conn: Connection, insert: Callable[..., Any], revived: Revived) -> bool:
    """The job scheduled again now with its new payment method (see domain/revival.py)."""
    job, after = revived.job, revived.revived
    if job.state not in REVIVABLE_FROM:
        raise Refused(f"a {job.state.value} job cannot be revived")
    done = conn.execute(
        update(JOBS)
        .where(*_seen(job))
        .values(
            state=JobState.SCHEDULED.value,
            next_retry_at=after.next_retry_at,
            payment_method=after.refs.payment_method,
            customer=after.refs.customer,
            card_network=after.card_network,
            card_fingerprint=after.card_fingerprint,
            network_rule=None,
            revived_after=after.revived_after,
            reason=after.reason,
            lease_token=None,
            lease_expires_at=None,
            dispatch_attempt=None,  # sqs mode: a message for the new time
            updated_at=revived.at,
        )
    ).rowcount
    if not done:
        return False
    card = job_card(after)
    if card is not None and card.link is not None:
        write_links(conn, insert, [card.link])
    write_entries(conn, [revived.entry])
    write_rollups(conn, revived.rollups)
    return True


class WebhooksMixin:
    """The WebhookStore port (domain/webhooks.py) and the revival by hand."""

    def webhook_recorded(self: _Store, event_id: str) -> bool:
        with self._tx(readonly=True) as conn:
            found = conn.execute(
                select(STRIPE_EVENTS.c.event_id).where(STRIPE_EVENTS.c.event_id == event_id)
            ).first()
        return found is not None

    def record_webhook(
        self: _Store,
        record: WebhookRecord,
        changes: Sequence[WebhookChange] = (),
        *,
        bound: QueueBound | None = None,
    ) -> Written:
        try:
            with self._tx() as conn:
                reopen_for(conn, [c for c in changes if isinstance(c, Revived)])
                try:
                    conn.execute(
                        STRIPE_EVENTS.insert().values(
                            event_id=record.event_id,
                            type=record.type[:64],
                            object_id=record.object_id,
                            job_id=record.job_id,
                            transaction_id=record.transaction_id,
                            effect=record.effect[:1000],
                            applied=record.applied,
                            created_at=record.created,
                            received_at=record.received_at,
                        )
                    )
                except IntegrityError:
                    raise _Duplicate() from None
                for change in changes:
                    try:
                        if isinstance(change, Settlement):
                            ok = settle_one(conn, change)
                        elif isinstance(change, PaidElsewhere):
                            ok = pay_elsewhere(conn, change)
                        elif isinstance(change, Revived):
                            ok = revive_one(conn, self._insert, change)
                        else:
                            if bound is not None:  # a full queue makes room or refuses
                                make_room(
                                    conn, self.dialect, bound, [change.job], record.received_at
                                )
                            conn.execute(JOBS.insert().values(**job_values(change.job)))
                            self._write_cards(conn, [change])
                            write_entries(conn, [change.entry])
                            ok = True
                    except IntegrityError:  # another job became active for the transaction
                        ok = False
                    if not ok:
                        raise _Changed()
        except _Duplicate:
            return Written.DUPLICATE
        except _Changed:
            return Written.CHANGED
        return Written.APPLIED

    def revive(self: _Store, revived: Revived) -> Job:
        """The revival by hand (`payretry update`): Refused when the job changed meanwhile or
        another job is active for its transaction."""
        try:
            with self._tx() as conn:
                reopen_for(conn, [revived])
                if not revive_one(conn, self._insert, revived):
                    exists = conn.execute(
                        select(JOBS.c.seq).where(JOBS.c.seq == revived.job.seq)
                    ).first()
                    if exists is None:
                        raise NotFound(f"no job {revived.job.id}")
                    raise Refused("the job changed while it was being updated; look again")
                rows = conn.execute(select(JOBS).where(JOBS.c.seq == revived.job.seq)).all()
                return self._jobs(conn, rows, True)[0]
        except IntegrityError:
            raise Refused(
                f"another job is active for transaction {revived.job.transaction_id}"
            ) from None

    def payment_succeeded_seen(self: _Store, payment_intent: str) -> bool:
        with self._tx(readonly=True) as conn:
            found = conn.execute(
                select(STRIPE_EVENTS.c.event_id)
                .where(
                    STRIPE_EVENTS.c.object_id == payment_intent,
                    STRIPE_EVENTS.c.type == _SUCCEEDED,
                )
                .limit(1)
            ).first()
        return found is not None

    def jobs_for_payment(self: _Store, payment_intent: str) -> list[Job]:
        with self._tx(readonly=True) as conn:
            rows = conn.execute(
                select(JOBS)
                .where(JOBS.c.payment_intent == payment_intent)
                .order_by(JOBS.c.seq.desc())
                .limit(20)
            ).all()
            return self._jobs(conn, rows, True)

    def job_for_session(self: _Store, checkout_session: str) -> Job | None:
        with self._tx(readonly=True) as conn:
            rows = conn.execute(
                select(JOBS)
                .where(
                    or_(
                        JOBS.c.action_ref == checkout_session,
                        JOBS.c.checkout_session == checkout_session,
                    )
                )
                .order_by(JOBS.c.seq.desc())
                .limit(1)
            ).all()
            jobs = self._jobs(conn, rows, True)
        return jobs[0] if jobs else None

    def jobs_for_customer(self: _Store, customer: str, *, limit: int = 100) -> list[Job]:
        with self._tx(readonly=True) as conn:
            rows = conn.execute(
                select(JOBS)
                .where(JOBS.c.customer == customer, JOBS.c.state.in_(_REVIVABLE))
                .order_by(JOBS.c.seq.desc())
                .limit(limit)
            ).all()
            return self._jobs(conn, rows, True)

    def webhooks_for_job(
        self: _Store, job_id: str, event_ids: Sequence[str] = ()
    ) -> list[WebhookRecord]:
        which = STRIPE_EVENTS.c.job_id == job_id
        if event_ids:
            which = or_(which, STRIPE_EVENTS.c.event_id.in_(list(event_ids)))
        with self._tx(readonly=True) as conn:
            rows = conn.execute(
                select(STRIPE_EVENTS).where(which).order_by(STRIPE_EVENTS.c.received_at)
            ).all()
        return [
            WebhookRecord(
                event_id=r.event_id,
                type=r.type,
                received_at=r.received_at,
                created=r.created_at,
                effect=r.effect,
                applied=r.applied,
                object_id=r.object_id,
                job_id=r.job_id,
                transaction_id=r.transaction_id,
            )
            for r in rows
        ]
