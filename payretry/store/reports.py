"""Counting: the numbers behind `stats`, `top` and `health`."""

from __future__ import annotations

from collections import defaultdict
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import Connection, func, select

from payretry.domain.models import ACTIVE_STATES, AttemptOutcome, JobState
from payretry.domain.ports import Stats
from payretry.store.tables import ATTEMPTS, JOBS

_ACTIVE = [state.value for state in ACTIVE_STATES]
_UNFINISHED = [AttemptOutcome.PENDING.value, AttemptOutcome.AWAITING.value]


class _HasTx(Protocol):
    def _tx(self, *, readonly: bool = False) -> AbstractContextManager[Connection]: ...


class ReportsMixin:
    def stats(self: _HasTx, now: datetime) -> Stats:
        with self._tx(readonly=True) as conn:
            by_state = {
                r.state: int(r.n)
                for r in conn.execute(
                    select(JOBS.c.state, func.count().label("n")).group_by(JOBS.c.state)
                )
            }
            pending = {
                r.currency: int(r.total)
                for r in conn.execute(
                    select(JOBS.c.currency, func.sum(JOBS.c.amount_minor).label("total"))
                    .where(JOBS.c.state.in_(_ACTIVE))
                    .group_by(JOBS.c.currency)
                    .order_by(JOBS.c.currency)
                )
            }
            reasons: dict[str, int] = defaultdict(int)
            for r in conn.execute(
                select(JOBS.c.error_code, func.count().label("n")).group_by(JOBS.c.error_code)
            ):
                reasons[r.error_code] += int(r.n)
            for r in conn.execute(
                select(ATTEMPTS.c.error_code, func.count().label("n"))
                .where(ATTEMPTS.c.outcome == AttemptOutcome.FAILED.value)
                .group_by(ATTEMPTS.c.error_code)
            ):
                reasons[r.error_code] += int(r.n)
            outcomes = {
                r.outcome: int(r.n)
                for r in conn.execute(
                    select(ATTEMPTS.c.outcome, func.count().label("n")).group_by(ATTEMPTS.c.outcome)
                )
            }
            per_attempt: dict[int, tuple[int, int]] = {}
            for r in conn.execute(
                select(
                    ATTEMPTS.c.number,
                    func.count().label("n"),
                    func.sum(
                        (ATTEMPTS.c.outcome == AttemptOutcome.SUCCEEDED.value).cast(
                            JOBS.c.attempt_count.type
                        )
                    ).label("ok"),
                )
                .where(ATTEMPTS.c.outcome.notin_(_UNFINISHED))
                .group_by(ATTEMPTS.c.number)
                .order_by(ATTEMPTS.c.number)
            ):
                per_attempt[int(r.number)] = (int(r.ok or 0), int(r.n))
            scheduled = JOBS.c.state == JobState.SCHEDULED.value
            due_now = conn.execute(
                select(func.count()).where(scheduled, JOBS.c.next_retry_at <= now)
            ).scalar_one()
            due_hour = conn.execute(
                select(func.count()).where(
                    scheduled,
                    JOBS.c.next_retry_at > now,
                    JOBS.c.next_retry_at <= now + timedelta(hours=1),
                )
            ).scalar_one()
            oldest = conn.execute(
                select(JOBS.c.next_retry_at)
                .where(scheduled, JOBS.c.next_retry_at <= now)
                .order_by(JOBS.c.next_retry_at)
                .limit(1)
            ).scalar()
        return Stats(
            total=sum(by_state.values()),
            by_state=by_state,
            pending_amount_minor=pending,
            by_error_code=dict(sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))),
            attempts_by_outcome=outcomes,
            success_by_attempt=per_attempt,
            due_now=int(due_now),
            due_next_hour=int(due_hour),
            oldest_due_at=oldest,
        )

    def oldest_due(self: _HasTx, now: datetime) -> datetime | None:
        with self._tx(readonly=True) as conn:
            value: datetime | None = conn.execute(
                select(JOBS.c.next_retry_at)
                .where(JOBS.c.state == JobState.SCHEDULED.value, JOBS.c.next_retry_at <= now)
                .order_by(JOBS.c.next_retry_at)
                .limit(1)
            ).scalar()
        return value
