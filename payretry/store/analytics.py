"""Daily rollups and the dashboard's reads, in SQL.

Rollups are written inside the transaction of the change that adds them (`write_rollups`,
called next to the outbox write): the batch's counts are merged first, then sent as one
`INSERT ... ON CONFLICT (day, metric, key, currency) DO UPDATE SET count = count + excluded.count
...` for all of its rows, so a batch of 200 finished attempts costs one statement, not 200.
A revival takes a job's counted end back with negative counts (domain/rollups.py, `unended`);
a row they bring to nothing is removed in the same transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from datetime import date, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import Connection, bindparam, func, or_, select

from payretry.domain.analytics import USER_WINDOW, Histogram, JobFilter, RetryFrequency
from payretry.domain.models import Job
from payretry.domain.rollups import Metric, Rollup
from payretry.store.engine import dialect_insert
from payretry.store.rows import job_from_row
from payretry.store.tables import ATTEMPTS, JOBS, ROLLUPS

_IDENTITY = ["day", "metric", "key", "currency"]


class _HasTx(Protocol):
    dialect: str

    def _tx(self, *, readonly: bool = False) -> AbstractContextManager[Connection]: ...


def _upsert(dialect: str) -> Any:
    found = _upserts.get(dialect)
    if found is None:
        insert = dialect_insert(dialect)
        stmt = insert(ROLLUPS)
        found = _upserts[dialect] = stmt.on_conflict_do_update(
            index_elements=_IDENTITY,
            set_={
                "count": ROLLUPS.c.count + stmt.excluded.count,
                "amount_minor": ROLLUPS.c.amount_minor + stmt.excluded.amount_minor,
                "seconds": ROLLUPS.c.seconds + stmt.excluded.seconds,
            },
        )
    return found


_upserts: dict[str, Any] = {}


def write_rollups(conn: Connection, rollups: Iterable[Rollup]) -> None:
    """Add the rollups inside the caller's transaction: one grouped upsert for the batch, its
    rows in identity order (as domain/rollups.merge; two writers lock them in one order). The
    counts are added up here in place, not as a new Rollup per repeat (a batch of 200
    outcomes has some 600 rollups and a dozen identities)."""
    totals: dict[tuple[date, str, str, str], list[Any]] = {}
    for r in rollups:
        identity = (r.day, r.metric.value, r.key, r.currency)
        found = totals.get(identity)
        if found is None:
            totals[identity] = [r.count, r.amount_minor, r.seconds]
        else:
            found[0] += r.count
            found[1] += r.amount_minor
            found[2] += r.seconds
    rows = [
        {
            "day": day,
            "metric": metric,
            "key": key,
            "currency": currency,
            "count": count,
            "amount_minor": amount,
            "seconds": seconds,
        }
        for (day, metric, key, currency), (count, amount, seconds) in sorted(totals.items())
    ]
    if rows:
        conn.execute(_upsert(conn.dialect.name), rows)
    taken_back = [identity for identity, (count, _, _) in totals.items() if count < 0]
    if taken_back:  # a revival took an end back: a row left at nothing counts nothing
        conn.execute(
            ROLLUPS.delete().where(
                *(ROLLUPS.c[name] == bindparam(f"b_{name}") for name in _IDENTITY),
                ROLLUPS.c.count == 0,
                ROLLUPS.c.amount_minor == 0,
            ),
            [
                {"b_day": day, "b_metric": metric, "b_key": key, "b_currency": currency}
                for day, metric, key, currency in taken_back
            ],
        )


def _rollup(row: Any) -> Rollup:
    r = row._mapping  # `count` is also a method of a row
    return Rollup(
        r["day"],
        Metric(r["metric"]),
        r["key"],
        r["currency"],
        int(r["count"]),
        int(r["amount_minor"]),
        float(r["seconds"]),
    )


def processing_times(conn: Connection) -> dict[tuple[str, str], Histogram]:
    rows = conn.execute(
        select(
            ROLLUPS.c.key,
            func.sum(ROLLUPS.c.count).label("n"),
            func.sum(ROLLUPS.c.seconds).label("s"),
        )
        .where(ROLLUPS.c.metric == Metric.DURATION.value)
        .group_by(ROLLUPS.c.key)
    )
    counts: dict[tuple[str, str], dict[str, int]] = {}
    totals: dict[tuple[str, str], float] = {}
    for row in rows:
        processor, outcome, le = row.key.split("|")
        counts.setdefault((processor, outcome), {})[le] = int(row.n)
        totals[(processor, outcome)] = totals.get((processor, outcome), 0.0) + float(row.s)
    return {k: Histogram(counts[k], totals[k]) for k in sorted(counts)}


def retry_frequency(conn: Connection, now: datetime, window: timedelta) -> RetryFrequency:
    per_user = (
        select(func.count().label("n"))
        .select_from(ATTEMPTS.join(JOBS, ATTEMPTS.c.job_seq == JOBS.c.seq))
        .where(ATTEMPTS.c.started_at > now - window, ATTEMPTS.c.started_at <= now)
        .group_by(JOBS.c.user_id)
        .subquery()
    )
    rows = conn.execute(select(per_user.c.n, func.count().label("users")).group_by(per_user.c.n))
    return RetryFrequency({int(r.n): int(r.users) for r in rows}, window)


class AnalyticsMixin:
    """The AnalyticsStore port."""

    def rollups(self: _HasTx, since: date | None = None) -> list[Rollup]:
        query = select(ROLLUPS).order_by(*(ROLLUPS.c[name] for name in _IDENTITY))
        if since is not None:
            query = query.where(ROLLUPS.c.day >= since)
        with self._tx(readonly=True) as conn:
            return [_rollup(r) for r in conn.execute(query)]

    def search_jobs(
        self: _HasTx, where: JobFilter, *, before_seq: int | None = None, limit: int = 50
    ) -> list[Job]:
        query = select(JOBS).order_by(JOBS.c.seq.desc()).limit(limit)
        if before_seq is not None:
            query = query.where(JOBS.c.seq < before_seq)
        if where.state is not None:
            query = query.where(JOBS.c.state == where.state.value)
        if where.user_id is not None:
            query = query.where(JOBS.c.user_id == where.user_id)
        if where.code is not None:
            query = query.where(
                or_(JOBS.c.error_code == where.code, JOBS.c.decline_code == where.code)
            )
        if where.currency is not None:
            query = query.where(JOBS.c.currency == where.currency)
        if where.min_minor is not None:
            query = query.where(JOBS.c.amount_minor >= where.min_minor)
        if where.max_minor is not None:
            query = query.where(JOBS.c.amount_minor <= where.max_minor)
        with self._tx(readonly=True) as conn:
            return [job_from_row(r) for r in conn.execute(query)]

    def throughput(self: _HasTx, since: datetime) -> dict[str, int]:
        query = (
            select(ATTEMPTS.c.outcome, func.count().label("n"))
            .where(ATTEMPTS.c.finished_at >= since)
            .group_by(ATTEMPTS.c.outcome)
        )
        with self._tx(readonly=True) as conn:
            return {r.outcome: int(r.n) for r in conn.execute(query)}

    def processing_times(self: _HasTx) -> dict[tuple[str, str], Histogram]:
        with self._tx(readonly=True) as conn:
            return processing_times(conn)

    def retry_frequency(
        self: _HasTx, now: datetime, window: timedelta = USER_WINDOW
    ) -> RetryFrequency:
        with self._tx(readonly=True) as conn:
            return retry_frequency(conn, now, window)


def rollups_of(changes: Sequence[Any]) -> list[Rollup]:
    """Every rollup the changes add (each change says its own: `change.rollups`)."""
    return [r for change in changes for r in change.rollups]
