"""The WebhookStore port (payretry/domain/webhooks.py) and the revival by hand
(domain/revival.py, RevivalStore) in memory, with the SQL store's rules (store/webhooks.py):

- each event's record once by its id: a second record of the same id is DUPLICATE and writes
  nothing;
- the record and every change it brings (a settled checkout, a payment made elsewhere, revived
  jobs, a new job), their outbox entries, rollups and card ledger entries, all or nothing: every
  change's fence is checked first (the job still as the caller saw it, one active job per
  transaction), and one that no longer holds is CHANGED with nothing written;
- a payment made elsewhere ends the job succeeded whatever active state it is in, takes its
  lease (a running attempt's late outcome is never recorded), closes the open attempt as
  succeeded and settles its card ledger entry as an approval;
- a revival schedules the job again now with its new payment method, links that method to its
  card, and takes back the end the rollups counted for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from payretry.domain.bound import Evicted, QueueBound
from payretry.domain.card_checks import job_card
from payretry.domain.card_ledger import EntryKind
from payretry.domain.changes import PaidElsewhere, Queued, Revived, Settlement
from payretry.domain.models import (
    ACTIVE_STATES,
    PAID_ELSEWHERE_FROM,
    REVIVABLE_FROM,
    AttemptOutcome,
    Job,
    JobState,
    check_transition,
)
from payretry.domain.ports import DuplicateActive
from payretry.domain.rollups import Rollup
from payretry.domain.webhooks import WebhookChange, WebhookRecord, Written
from payretry.errors import NotFound, Refused
from payretry.testing._base import JobRow, aware, stored_job
from payretry.testing.cards import CardsMixin, _Entry

_SUCCEEDED = "payment_intent.succeeded"
_OPEN = (AttemptOutcome.PENDING, AttemptOutcome.AWAITING)


class _Changed(Exception):
    """A change's fence no longer holds: nothing of the event is written."""


class WebhooksMixin(CardsMixin):
    """Stripe events' records, the changes they make, and the lookups the events need."""

    # -- what the store itself provides (store.py) --------------------------------------------

    def _check_new(self, jobs: Sequence[Job]) -> None:
        raise NotImplementedError

    def _write_cards(self, queued: Sequence[Queued]) -> None:
        raise NotImplementedError

    def _settle(self, row: JobRow, s: Settlement) -> None:
        raise NotImplementedError

    def _make_room(self, bound: QueueBound | None, jobs: Sequence[Job]) -> list[Evicted]:
        raise NotImplementedError

    def _evict(self, evicted: Sequence[Evicted]) -> None:
        raise NotImplementedError

    # -- reads -------------------------------------------------------------------------------

    def webhook_recorded(self, event_id: str) -> bool:
        with self._tx("webhook_recorded"):
            return event_id in self._webhooks

    def payment_succeeded_seen(self, payment_intent: str) -> bool:
        with self._tx("payment_succeeded_seen"):
            return any(
                r.object_id == payment_intent and r.type == _SUCCEEDED
                for r in self._webhooks.values()
            )

    def jobs_for_payment(self, payment_intent: str) -> list[Job]:
        with self._tx("jobs_for_payment"):
            rows = [r for r in self._rows.values() if r.job.refs.payment_intent == payment_intent]
            return [r.record() for r in reversed(rows)][:20]

    def job_for_session(self, checkout_session: str) -> Job | None:
        with self._tx("job_for_session"):
            for row in reversed(self._rows.values()):
                job = row.job
                if (job.action is not None and job.action.ref == checkout_session) or (
                    job.refs.checkout_session == checkout_session
                ):
                    return row.record()
            return None

    def jobs_for_customer(self, customer: str, *, limit: int = 100) -> list[Job]:
        with self._tx("jobs_for_customer"):
            rows = [
                r
                for r in self._rows.values()
                if r.job.refs.customer == customer and r.job.state in REVIVABLE_FROM
            ]
            return [r.record() for r in reversed(rows)][: max(0, limit)]

    def webhooks_for_job(self, job_id: str, event_ids: Sequence[str] = ()) -> list[WebhookRecord]:
        wanted = set(event_ids)
        with self._tx("webhooks_for_job"):
            found = [
                r for r in self._webhooks.values() if r.job_id == job_id or r.event_id in wanted
            ]
            return sorted(found, key=lambda r: r.received_at)

    # -- writes ------------------------------------------------------------------------------

    def record_webhook(
        self,
        record: WebhookRecord,
        changes: Sequence[WebhookChange] = (),
        *,
        bound: QueueBound | None = None,
    ) -> Written:
        with self._tx("record_webhook"):
            if record.event_id in self._webhooks:
                return Written.DUPLICATE
            try:
                self._fence(changes)
            except _Changed:
                return Written.CHANGED
            opened = [c.job for c in changes if isinstance(c, Queued)]
            evicted = self._make_room(bound, opened) if opened else []  # QueueFull: nothing done
            self._evict(evicted)
            entries = self._encoded(change.entry for change in changes)
            rollups: list[Rollup] = []
            for change in changes:
                if isinstance(change, Settlement):
                    self._settle(self._rows[change.job.seq], change)
                    rollups += change.rollups
                elif isinstance(change, PaidElsewhere):
                    self._pay_elsewhere(change)
                    rollups += change.rollups
                elif isinstance(change, Revived):
                    self._revive(change)
                    rollups += change.rollups
                else:
                    self._add(stored_job(change.job, self._next_seq))
                    self._next_seq += 1
                    self._write_cards([change])
            self._webhooks[record.event_id] = replace(
                record,
                type=record.type[:64],
                effect=record.effect[:1000],
                received_at=aware(record.received_at),
                created=aware(record.created),
                duplicate=False,
            )
            self._write(entries)
            self._roll(rollups)
            return Written.APPLIED

    def revive(self, revived: Revived) -> Job:
        """The revival by hand (`payretry update`): Refused when the job changed meanwhile or
        another job is active for its transaction."""
        with self._tx("revive"):
            if self._row(revived.job.id) is None:
                raise NotFound(f"no job {revived.job.id}")
            try:
                self._fence([revived])
            except _Changed:
                txn = revived.job.transaction_id
                active = self._active.get(txn)
                if active is not None and active != revived.job.seq:
                    raise Refused(f"another job is active for transaction {txn}") from None
                raise Refused("the job changed while it was being updated; look again") from None
            entries = self._encoded([revived.entry])
            row = self._revive(revived)
            self._write(entries)
            self._roll(revived.rollups)
            return row.record()

    # -- under the lock: the fences, then each change ---------------------------------------

    def _fence(self, changes: Sequence[WebhookChange]) -> None:
        """Every change's fence, before anything is applied (raises _Changed; Refused for a
        change that no state allows)."""
        activated: set[str] = set()
        new: list[Job] = []
        for change in changes:
            if isinstance(change, Queued):
                new.append(change.job)
                continue
            job = change.job
            row = self._rows.get(job.seq)
            if isinstance(change, Settlement):
                check_transition(JobState.AWAITING_PAYER, change.decision.state)
                if (
                    row is None
                    or row.job.state is not JobState.AWAITING_PAYER
                    or row.job.attempt_count != job.attempt_count
                ):
                    raise _Changed()
                continue
            if isinstance(change, PaidElsewhere) and job.state not in PAID_ELSEWHERE_FROM:
                raise Refused(f"a {job.state.value} job cannot be settled as paid elsewhere")
            if isinstance(change, Revived) and job.state not in REVIVABLE_FROM:
                raise Refused(f"a {job.state.value} job cannot be revived")
            if (
                row is None
                or row.job.state is not job.state
                or row.job.attempt_count != job.attempt_count
            ):
                raise _Changed()
            if isinstance(change, Revived) and job.state not in ACTIVE_STATES:
                txn = job.transaction_id  # it becomes active again: one active job per txn
                if txn in activated or self._active.get(txn, job.seq) != job.seq:
                    raise _Changed()
                activated.add(txn)
        if new:
            taken = {job.transaction_id for job in new if not job.state.final}
            if taken & activated:
                raise _Changed()
            try:
                self._check_new(new)
            except DuplicateActive:
                raise _Changed() from None

    def _pay_elsewhere(self, paid: PaidElsewhere) -> None:
        row = self._rows[paid.job.seq]
        number = paid.open_attempt
        at = aware(paid.at)
        self._put(
            row,
            replace(
                row.job,
                state=JobState.SUCCEEDED,
                attempt_count=number if number is not None else row.job.attempt_count,
                next_retry_at=None,
                reason=paid.reason,
                lease_token=None,
                lease_expires_at=None,
                rescues=0,
                action=None,
                updated_at=at,
            ),
        )
        attempt = row.attempts.get(number) if number is not None else None
        if attempt is not None and attempt.outcome in _OPEN:
            row.attempts[attempt.number] = replace(
                attempt,
                outcome=AttemptOutcome.SUCCEEDED,
                finished_at=at,
                reference=paid.reference,
                message=f"settled by Stripe event {paid.by} ({paid.what})",
                decision="succeeded",
                next_retry_at=None,
            )
        card = paid.card_entry
        if card is None:
            return
        key, attempt_number = card
        for i, stored in self._ledger.items():
            e = stored.entry
            if (
                stored.key == key
                and e.job_id == row.job.id
                and e.attempt_number == attempt_number
                and e.kind is EntryKind.ATTEMPT
            ):
                settled = replace(e, kind=EntryKind.APPROVAL, at=at)
                self._ledger[i] = _Entry(stored.key, stored.sent_at, settled)

    def _revive(self, revived: Revived) -> JobRow:
        row = self._rows[revived.job.seq]
        after = revived.revived
        self._put(
            row,
            replace(
                row.job,
                state=JobState.SCHEDULED,
                next_retry_at=aware(after.next_retry_at or revived.at),
                refs=after.refs,
                card_network=after.card_network,
                card_fingerprint=after.card_fingerprint,
                network_rule=None,
                revived_after=after.revived_after,
                reason=after.reason,
                lease_token=None,
                lease_expires_at=None,
                updated_at=aware(revived.at),
            ),
        )
        row.dispatch_attempt = None  # sqs mode: a message for the new time
        card = job_card(after)
        if card is not None and card.link is not None:
            self._add_links([card.link])
        return row
