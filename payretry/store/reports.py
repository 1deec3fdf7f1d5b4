"""Counting: the numbers behind `stats`, `top`, `health` and the metrics. `stats()` and
`telemetry()` read the same three things (jobs by state, attempts grouped by number, outcome and
code, what is due) through the same queries here."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import Connection, case, func, select
from sqlalchemy.exc import DBAPIError

from payretry.domain.analytics import USER_WINDOW
from payretry.domain.models import ACTIVE_STATES, AttemptOutcome, JobState
from payretry.domain.outbox import Telemetry
from payretry.domain.ports import Stats
from payretry.errors import StoreError
from payretry.store.analytics import processing_times, retry_frequency
from payretry.store.counts import Counts, current, mark, seal_step, sealable
from payretry.store.outbox import pending_counts
from payretry.store.purge import batches_for
from payretry.store.tables import ACTIVE_PREDICATE, JOBS

_ACTIVE = [state.value for state in ACTIVE_STATES]
_SCHEDULED = JOBS.c.state == JobState.SCHEDULED.value
SEAL_AFTER = 5_000  # final jobs behind the mark worth sealing before counting


class _HasTx(Protocol):
    dialect: str

    def _tx(self, *, readonly: bool = False) -> AbstractContextManager[Connection]: ...
    def _counts(self) -> Counts: ...
    def _seal(self, size: int, limit: int) -> int: ...


@dataclass(frozen=True, slots=True)
class _AttemptGroup:
    number: int
    outcome: str
    error_code: str | None
    decline_code: str | None
    n: int


def _attempt_groups(counts: Counts) -> list[_AttemptGroup]:
    return [
        _AttemptGroup(number, outcome, error, decline, n)
        for (number, outcome, error, decline), n in sorted(
            counts.attempts.items(), key=lambda kv: (kv[0][0], kv[0][1], str(kv[0][2:]))
        )
    ]


def _pending(conn: Connection) -> dict[str, int]:
    """The amount per currency of the active jobs, in one pass over their own index (migration
    0011: the predicate is the index's, word for word, so SQLite can use it)."""
    rows = conn.execute(
        select(JOBS.c.currency, func.sum(JOBS.c.amount_minor).label("total"))
        .where(ACTIVE_PREDICATE)
        .group_by(JOBS.c.currency)
    )
    return dict(sorted((r.currency, int(r.total)) for r in rows))


def _due(conn: Connection, now: datetime) -> tuple[int, datetime | None, int]:
    """How many scheduled jobs are due at `now`, since when the oldest has waited, and how many
    fall due within the next hour: one pass over the due index up to an hour ahead."""
    due = JOBS.c.next_retry_at <= now
    count, oldest, later = conn.execute(
        select(
            func.count(case((due, 1))),
            func.min(case((due, JOBS.c.next_retry_at))),
            func.count(case((JOBS.c.next_retry_at > now, 1))),
        ).where(_SCHEDULED, JOBS.c.next_retry_at <= now + timedelta(hours=1))
    ).one()
    return int(count), oldest, int(later)


class ReportsMixin:
    def _counts(self: _HasTx) -> Counts:
        """Every job and attempt counted: sealed counts plus the newer jobs (store/counts.py).
        The mark moves first when enough jobs behind it are final; a database that cannot be
        written (a read-only replica) is counted as it is."""
        with self._tx(readonly=True) as conn:
            limit = sealable(conn)
            behind = limit - mark(conn)
        if behind >= SEAL_AFTER:
            try:
                batches_for(self.dialect).run(lambda size: self._seal(size, limit))
            except (StoreError, DBAPIError):  # unavailable, or read-only: count it as it is
                pass
        with self._tx(readonly=True) as conn:
            return current(conn)

    def _seal(self: _HasTx, size: int, limit: int) -> int:
        with self._tx() as conn:
            _, left = seal_step(conn, size, limit)
        return size if left else 0

    def stats(self: _HasTx, now: datetime) -> Stats:
        counts = self._counts()
        with self._tx(readonly=True) as conn:
            by_state = dict(counts.by_state)
            pending = _pending(conn)
            reasons: dict[str, int] = defaultdict(int, counts.by_error)
            groups = _attempt_groups(counts)
            due_now, oldest, due_hour = _due(conn, now)
        outcomes: dict[str, int] = defaultdict(int)
        per_attempt: dict[int, list[int]] = {}
        for g in groups:
            outcomes[g.outcome] += g.n
            if g.outcome == AttemptOutcome.FAILED.value:
                reasons[g.error_code or "unknown"] += g.n
            if g.outcome in (AttemptOutcome.SUCCEEDED.value, AttemptOutcome.FAILED.value):
                ok_total = per_attempt.setdefault(g.number, [0, 0])
                ok_total[1] += g.n
                if g.outcome == AttemptOutcome.SUCCEEDED.value:
                    ok_total[0] += g.n
        return Stats(
            total=sum(by_state.values()),
            by_state=by_state,
            pending_amount_minor=pending,
            by_error_code=dict(sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))),
            attempts_by_outcome=dict(outcomes),
            success_by_attempt={n: (ok, total) for n, (ok, total) in sorted(per_attempt.items())},
            due_now=due_now,
            due_next_hour=due_hour,
            oldest_due_at=oldest,
        )

    def oldest_due(self: _HasTx, now: datetime) -> datetime | None:
        with self._tx(readonly=True) as conn:
            return _due(conn, now)[1]

    def telemetry(self: _HasTx, now: datetime, sinks: Sequence[str] = ()) -> Telemetry:
        counts = self._counts()
        with self._tx(readonly=True) as conn:
            by_state = dict(counts.by_state)
            groups = _attempt_groups(counts)
            due_now, oldest, _ = _due(conn, now)
            pending = pending_counts(conn, self.dialect, sinks)
            blocked = {
                str(r.network_rule or "unknown"): int(r.n)
                for r in conn.execute(
                    select(JOBS.c.network_rule, func.count().label("n"))
                    .where(JOBS.c.state == JobState.BLOCKED.value)
                    .group_by(JOBS.c.network_rule)
                )
            }
            processing = processing_times(conn)
            frequency = retry_frequency(conn, now, USER_WINDOW)
        attempts: dict[int, int] = defaultdict(int)
        failures: dict[tuple[str, int], int] = defaultdict(int)
        succeeded = finished = 0
        for g in groups:
            attempts[g.number] += g.n
            if g.outcome == AttemptOutcome.SUCCEEDED.value:
                succeeded += g.n
                finished += g.n
            elif g.outcome == AttemptOutcome.FAILED.value:
                finished += g.n
                failures[(g.decline_code or g.error_code or "unknown", g.number)] += g.n
        return Telemetry(
            at=now,
            by_state=by_state,
            attempts_by_number=dict(sorted(attempts.items())),
            failures=dict(sorted(failures.items())),
            succeeded=succeeded,
            finished=finished,
            queue_size=sum(by_state.get(state, 0) for state in _ACTIVE),
            due_now=due_now,
            oldest_due_at=oldest,
            pending_events=pending,
            blocked_by_rule=dict(sorted(blocked.items())),
            processing=processing,
            retry_frequency=frequency,
        )
