"""Housekeeping: purging finished jobs, daemon heartbeats."""

from __future__ import annotations

from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import Connection, func, select, update

from payretry.domain.models import FINAL_STATES
from payretry.domain.ports import WorkerBeat
from payretry.store.tables import ATTEMPTS, JOBS, STRIPE_EVENTS, WORKERS

_CHUNK = 500


class _HasTx(Protocol):
    def _tx(self, *, readonly: bool = False) -> AbstractContextManager[Connection]: ...


class HousekeepingMixin:
    def purge(self: _HasTx, before: datetime, *, dry_run: bool = False) -> int:
        finals = [state.value for state in FINAL_STATES]
        old = (JOBS.c.state.in_(finals), JOBS.c.updated_at < before)
        if dry_run:
            with self._tx(readonly=True) as conn:
                return int(conn.execute(select(func.count()).where(*old)).scalar_one())
        removed = 0
        while True:  # short transactions, so runners are never held up for long
            with self._tx() as conn:
                seqs = list(conn.execute(select(JOBS.c.seq).where(*old).limit(_CHUNK)).scalars())
                if not seqs:
                    # Stripe webhook records as old (Stripe redelivers an event for 3 days at
                    # most, so a record this old can no longer stop a repeat).
                    conn.execute(STRIPE_EVENTS.delete().where(STRIPE_EVENTS.c.received_at < before))
                    return removed
                conn.execute(ATTEMPTS.delete().where(ATTEMPTS.c.job_seq.in_(seqs)))
                conn.execute(JOBS.delete().where(JOBS.c.seq.in_(seqs)))
                removed += len(seqs)

    def beat(self: _HasTx, name: str, kind: str, interval: timedelta, now: datetime) -> None:
        with self._tx() as conn:
            updated = conn.execute(
                update(WORKERS)
                .where(WORKERS.c.name == name)
                .values(beat_at=now, interval_s=interval.total_seconds())
            ).rowcount
            if not updated:
                conn.execute(
                    WORKERS.insert().values(
                        name=name,
                        kind=kind,
                        started_at=now,
                        beat_at=now,
                        interval_s=interval.total_seconds(),
                    )
                )

    def forget_worker(self: _HasTx, name: str) -> None:
        with self._tx() as conn:
            conn.execute(WORKERS.delete().where(WORKERS.c.name == name))

    def workers(self: _HasTx) -> list[WorkerBeat]:
        with self._tx(readonly=True) as conn:
            rows = conn.execute(select(WORKERS).order_by(WORKERS.c.beat_at.desc())).all()
        return [
            WorkerBeat(r.name, r.kind, r.started_at, r.beat_at, timedelta(seconds=r.interval_s))
            for r in rows
        ]
