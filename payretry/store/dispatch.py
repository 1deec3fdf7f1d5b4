"""SQS dispatch in the store: which scheduled jobs have a message for their next attempt.

A job is marked dispatched (`dispatch_attempt` = its next attempt, `dispatched_at`) in the same
transaction that records the intent to send; the message id is recorded once the queue took it.
An intent never confirmed (a crash between the two) is found by `unsent_dispatches` and sent
again: a duplicate message is harmless, the worker acts only on the job's current attempt.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Connection, and_, bindparam, func, select, update

from payretry.domain.dispatch import Dispatch
from payretry.domain.models import JobState
from payretry.store.tables import (
    DISPATCHED_PREDICATE,
    JOBS,
    UNDISPATCHED_PREDICATE,
    UNSENT_PREDICATE,
)

_SCHEDULED = JobState.SCHEDULED.value
# The next attempt of a scheduled job has its message (the complement of UNDISPATCHED).
_CURRENT = and_(JOBS.c.state == _SCHEDULED, JOBS.c.dispatch_attempt == JOBS.c.attempt_count + 1)
_COLUMNS = (
    JOBS.c.seq,
    JOBS.c.id,
    JOBS.c.transaction_id,
    JOBS.c.dispatch_attempt,
    JOBS.c.next_retry_at,
    JOBS.c.updated_at,
)


class _HasTx(Protocol):
    dialect: str

    def _tx(self, *, readonly: bool = False) -> AbstractContextManager[Connection]: ...


def _dispatch(row: Any) -> Dispatch:
    return Dispatch(
        seq=row.seq,
        job_id=row.id,
        transaction_id=row.transaction_id,
        attempt_number=row.dispatch_attempt,
        next_retry_at=row.next_retry_at,
        scheduled_at=row.updated_at,
    )


def _mark(store: _HasTx, picked: Any, still: Any, **values: Any) -> list[Dispatch]:
    """In one transaction, take the jobs `picked` selects (on PostgreSQL skipping rows other
    processes hold), set `values` on those that still match `still`, and return their
    dispatches in due order."""
    if store.dialect == "postgresql":
        picked = picked.with_for_update(skip_locked=True)
    with store._tx() as conn:
        seqs = list(conn.execute(picked).scalars())
        if not seqs:
            return []
        rows = conn.execute(
            update(JOBS).where(JOBS.c.seq.in_(seqs), still).values(**values).returning(*_COLUMNS)
        ).all()
    return sorted((_dispatch(r) for r in rows), key=lambda d: (d.next_retry_at, d.seq))


class DispatchMixin:
    def mark_dispatch(
        self: _HasTx,
        now: datetime,
        horizon: datetime,
        limit: int,
        *,
        job_ids: Sequence[str] | None = None,
    ) -> list[Dispatch]:
        # The predicate as text, exactly as the partial index says it, so SQLite (and a
        # PostgreSQL generic plan) can prove the index applies.
        picked = select(JOBS.c.seq).where(UNDISPATCHED_PREDICATE, JOBS.c.next_retry_at <= horizon)
        if job_ids is not None:
            picked = picked.where(JOBS.c.id.in_(list(job_ids)))
        else:
            picked = picked.order_by(JOBS.c.next_retry_at).limit(limit)
        return _mark(
            self,
            picked,
            UNDISPATCHED_PREDICATE,
            dispatch_attempt=JOBS.c.attempt_count + 1,
            dispatched_at=now,
            dispatch_message_id=None,
        )

    def confirm_dispatch(self: _HasTx, sent: Sequence[tuple[Dispatch, str]]) -> int:
        if not sent:
            return 0
        with self._tx() as conn:
            result = conn.execute(
                update(JOBS)
                .where(
                    JOBS.c.seq == bindparam("b_seq"),
                    JOBS.c.dispatch_attempt == bindparam("b_attempt"),
                )
                .values(dispatch_message_id=bindparam("b_message")),
                [
                    {"b_seq": d.seq, "b_attempt": d.attempt_number, "b_message": message_id}
                    for d, message_id in sent
                ],
            )
            return int(result.rowcount or 0)

    def unsent_dispatches(
        self: _HasTx, before: datetime, now: datetime, limit: int
    ) -> list[Dispatch]:
        picked = (
            select(*_COLUMNS, JOBS.c.state, JOBS.c.attempt_count)
            .where(UNSENT_PREDICATE, JOBS.c.dispatched_at <= before)
            .order_by(JOBS.c.dispatched_at)
            .limit(limit)
        )
        if self.dialect == "postgresql":
            picked = picked.with_for_update(skip_locked=True)
        with self._tx() as conn:
            rows = conn.execute(picked).all()
            if not rows:
                return []
            current = [
                r
                for r in rows
                if r.state == _SCHEDULED and r.dispatch_attempt == r.attempt_count + 1
            ]
            resend = {r.seq for r in current}
            settled = [r.seq for r in rows if r.seq not in resend]
            if settled:  # the job moved on (its message got through, or it was cancelled)
                conn.execute(
                    update(JOBS).where(JOBS.c.seq.in_(settled)).values(dispatch_message_id="")
                )
            if current:  # sent again now; the next sweep waits `resend_after` again
                conn.execute(
                    update(JOBS).where(JOBS.c.seq.in_(resend), _CURRENT).values(dispatched_at=now)
                )
        return [_dispatch(r) for r in current]

    def lost_dispatches(
        self: _HasTx, before: datetime, now: datetime, limit: int
    ) -> list[Dispatch]:
        # The predicate as text, as the partial index says it (see mark_dispatch).
        picked = (
            select(JOBS.c.seq)
            .where(
                DISPATCHED_PREDICATE,
                JOBS.c.next_retry_at <= before,
                JOBS.c.dispatched_at <= before,
                JOBS.c.dispatch_message_id.is_not(None),
            )
            .order_by(JOBS.c.next_retry_at)
            .limit(limit)
        )
        # Unconfirmed again: the next sweep waits `before` again before another duplicate.
        return _mark(self, picked, _CURRENT, dispatched_at=now, dispatch_message_id=None)

    def undispatch(self: _HasTx, job_id: str, attempt_number: int) -> bool:
        with self._tx() as conn:
            result = conn.execute(
                update(JOBS)
                .where(
                    JOBS.c.id == job_id,
                    JOBS.c.dispatch_attempt == attempt_number,
                    JOBS.c.state == _SCHEDULED,
                )
                .values(dispatch_attempt=None, dispatched_at=None, dispatch_message_id=None)
            )
            return bool(result.rowcount)

    def dispatch_counts(self: _HasTx) -> dict[str, int]:
        """Scheduled jobs whose next attempt has a message (`dispatched`), and dispatches whose
        send is not yet confirmed (`unconfirmed`)."""
        with self._tx(readonly=True) as conn:
            dispatched = conn.execute(select(func.count()).where(_CURRENT)).scalar_one()
            unconfirmed = conn.execute(
                select(func.count()).select_from(JOBS).where(UNSENT_PREDICATE)
            ).scalar_one()
        return {"dispatched": int(dispatched), "unconfirmed": int(unconfirmed)}
