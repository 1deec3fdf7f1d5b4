"""SQS dispatch marks in memory: which scheduled jobs have a message for their next attempt,
the intent to send recorded before the send, the message id once the queue took it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from payretry.domain.dispatch import Dispatch
from payretry.domain.models import JobState
from payretry.testing._base import JobRow, Tables, aware


def _undispatched(row: JobRow) -> bool:
    """Scheduled, and no message for its next attempt."""
    return row.job.state is JobState.SCHEDULED and (
        row.dispatch_attempt is None or row.dispatch_attempt <= row.job.attempt_count
    )


def _current(row: JobRow) -> bool:
    """Scheduled, and its next attempt has its message."""
    return row.job.state is JobState.SCHEDULED and row.dispatch_attempt == row.job.attempt_count + 1


def _unsent(row: JobRow) -> bool:
    return row.dispatched_at is not None and row.dispatch_message_id is None


def _dispatch(row: JobRow) -> Dispatch:
    job = row.job
    assert row.dispatch_attempt is not None and job.next_retry_at is not None
    return Dispatch(
        seq=job.seq,
        job_id=job.id,
        transaction_id=job.transaction_id,
        attempt_number=row.dispatch_attempt,
        next_retry_at=job.next_retry_at,
        scheduled_at=job.updated_at,
    )


class DispatchMixin(Tables):
    def mark_dispatch(
        self,
        now: datetime,
        horizon: datetime,
        limit: int,
        *,
        job_ids: Sequence[str] | None = None,
    ) -> list[Dispatch]:
        now, horizon = aware(now), aware(horizon)
        with self._tx("mark_dispatch"):
            rows = [
                r
                for r in self._rows.values()
                if _undispatched(r)
                and r.job.next_retry_at is not None
                and r.job.next_retry_at <= horizon
            ]
            if job_ids is not None:
                wanted = set(job_ids)
                rows = [r for r in rows if r.job.id in wanted]
            else:
                rows.sort(key=lambda r: (r.job.next_retry_at, r.seq))
                rows = rows[: max(0, limit)]
            for row in rows:
                row.dispatch_attempt = row.job.attempt_count + 1
                row.dispatched_at = now
                row.dispatch_message_id = None
            return sorted((_dispatch(r) for r in rows), key=lambda d: (d.next_retry_at, d.seq))

    def confirm_dispatch(self, sent: Sequence[tuple[Dispatch, str]]) -> int:
        with self._tx("confirm_dispatch"):
            confirmed = 0
            for dispatch, message_id in sent:
                row = self._rows.get(dispatch.seq)
                if row is not None and row.dispatch_attempt == dispatch.attempt_number:
                    row.dispatch_message_id = message_id
                    confirmed += 1
            return confirmed

    def unsent_dispatches(self, before: datetime, now: datetime, limit: int) -> list[Dispatch]:
        before, now = aware(before), aware(now)
        with self._tx("unsent_dispatches"):
            rows = sorted(
                (
                    r
                    for r in self._rows.values()
                    if _unsent(r) and r.dispatched_at is not None and r.dispatched_at <= before
                ),
                key=lambda r: (r.dispatched_at, r.seq),
            )[: max(0, limit)]
            current = [r for r in rows if _current(r)]
            found = [_dispatch(r) for r in current]
            for row in rows:
                if _current(row):  # sent again now; the next sweep waits `resend_after` again
                    row.dispatched_at = now
                else:  # the job moved on (its message got through, or it was cancelled)
                    row.dispatch_message_id = ""
            return found

    def lost_dispatches(self, before: datetime, now: datetime, limit: int) -> list[Dispatch]:
        before, now = aware(before), aware(now)
        with self._tx("lost_dispatches"):
            rows = sorted(
                (
                    r
                    for r in self._rows.values()
                    if _current(r)
                    and r.dispatch_message_id is not None
                    and r.job.next_retry_at is not None
                    and r.job.next_retry_at <= before
                    and r.dispatched_at is not None
                    and r.dispatched_at <= before
                ),
                key=lambda r: (r.job.next_retry_at, r.seq),
            )[: max(0, limit)]
            for row in rows:  # unconfirmed again: the next sweep waits again
                row.dispatched_at = now
                row.dispatch_message_id = None
            return [_dispatch(r) for r in rows]

    def undispatch(self, job_id: str, attempt_number: int) -> bool:
        with self._tx("undispatch"):
            row = self._row(job_id)
            if (
                row is None
                or row.dispatch_attempt != attempt_number
                or row.job.state is not JobState.SCHEDULED
            ):
                return False
            row.dispatch_attempt = row.dispatched_at = row.dispatch_message_id = None
            return True

    def dispatch_counts(self) -> dict[str, int]:
        """Scheduled jobs whose next attempt has a message (`dispatched`), and dispatches whose
        send is not yet confirmed (`unconfirmed`)."""
        with self._tx("dispatch_counts"):
            rows = self._rows.values()
            return {
                "dispatched": sum(1 for r in rows if _current(r)),
                "unconfirmed": sum(1 for r in rows if _unsent(r)),
            }
