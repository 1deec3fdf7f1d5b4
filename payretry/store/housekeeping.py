"""Housekeeping: purging finished jobs, daemon heartbeats."""

from __future__ import annotations

from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import Connection, Engine, func, select, update

from payretry.domain.models import FINAL_STATES
from payretry.domain.ports import WorkerBeat
from payretry.store.counts import mark, unseal
from payretry.store.engine import purge_batches
from payretry.store.purge import Holds
from payretry.store.tables import ATTEMPTS, JOBS, STRIPE_EVENTS, WORKERS


class _HasTx(Protocol):
    dialect: str
    engine: Engine

    def _tx(self, *, readonly: bool = False) -> AbstractContextManager[Connection]: ...


class HousekeepingMixin:
    def purge(
        self: _HasTx, before: datetime, *, dry_run: bool = False, holds: Holds | None = None
    ) -> int:
        """Finished jobs last changed before `before`, with their attempts: a batch at a time
        in id order (a cursor, so no batch reads what an earlier one kept), each batch its own
        transaction sized by how long it held the lock (store/purge.py), taking what it removes
        off the sealed counts (store/counts.py) in that same transaction. `holds`, if given,
        gets how long the batches held the lock and waited for it: what other writers met."""
        finals = [state.value for state in FINAL_STATES]
        if dry_run:
            with self._tx(readonly=True) as conn:
                old = (JOBS.c.state.in_(finals), JOBS.c.updated_at < before)
                return int(conn.execute(select(func.count()).where(*old)).scalar_one())
        # `state || ''`: the same test, but no index on state can serve it, so the batch walks
        # the primary key from the cursor instead of the state index from its start.
        purgeable = (JOBS.c.state.concat("").in_(finals), JOBS.c.updated_at < before)
        after = 0
        removed = 0
        batches = purge_batches(self.engine, holds)

        def step(size: int) -> int:
            nonlocal after, removed
            with batches.transaction(self._tx, size) as conn:
                last = conn.execute(
                    select(JOBS.c.seq)
                    .where(JOBS.c.seq > after, *purgeable)
                    .order_by(JOBS.c.seq)
                    .offset(size - 1)
                    .limit(1)
                ).scalar()
                span = [JOBS.c.seq > after, *purgeable]
                if last is not None:
                    span.append(JOBS.c.seq <= last)
                sealed_up_to = mark(conn, lock=True)  # held: no sealing moves it meanwhile
                if after < sealed_up_to:
                    unseal(conn, sealed_up_to, *span)
                doomed = select(JOBS.c.seq).where(*span).scalar_subquery()
                conn.execute(ATTEMPTS.delete().where(ATTEMPTS.c.job_seq.in_(doomed)))
                count = int(conn.execute(JOBS.delete().where(*span)).rowcount)
            removed += count
            if last is None:
                return 0  # fewer than `size` were left: all of them are gone now
            after = int(last)
            return size

        batches.run(step)
        with batches.transaction(self._tx) as conn:
            # Stripe webhook records as old (Stripe redelivers an event for 3 days at most, so a
            # record this old can no longer stop a repeat).
            conn.execute(STRIPE_EVENTS.delete().where(STRIPE_EVENTS.c.received_at < before))
        return removed

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
