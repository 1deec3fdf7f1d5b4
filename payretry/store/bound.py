"""The bounded queue in SQL: make room for new jobs in the queue's own transaction.

Race-free: on SQLite every writer holds the database from BEGIN IMMEDIATE, so the count, the
choice and the insert of one queue cannot interleave with another's. On PostgreSQL a queue with
a bound first takes one transaction-scoped advisory lock, so two queues at the full mark count
one after the other (each count is a new statement, after the lock: READ COMMITTED sees the
other's jobs); the victims are read FOR UPDATE SKIP LOCKED, so a job a claim holds at that
moment (about to run) is passed over, and a victim cannot be claimed before it is evicted. Only
a queue adds active jobs, so holding the lock while counting keeps the bound.

The victim query walks the due index (state, priority DESC, next_retry_at, seq) backwards from
the lowest scheduled priority and stops at its limit: it never scans the jobs.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Select, bindparam, func, select, text, update

from payretry.domain.bound import Evicted, QueueBound
from payretry.domain.models import ACTIVE_STATES, Job, JobState, check_transition
from payretry.errors import Refused
from payretry.store.analytics import rollups_of, write_rollups
from payretry.store.outbox import write_entries
from payretry.store.rows import job_from_row
from payretry.store.tables import JOBS

_ACTIVE = sorted(state.value for state in ACTIVE_STATES)
_SCHEDULED = JobState.SCHEDULED.value
# pg_advisory_xact_lock(space, key): its own space, apart from the card locks and the migrator.
_LOCK = text("SELECT pg_advisory_xact_lock(:space, :key)")
_LOCK_SPACE, _LOCK_KEY = 0x626F756E, 1  # "boun"


def active_count(conn: Connection) -> int:
    """Active jobs (the predicate of the one-active-job-per-transaction index)."""
    query = select(func.count()).select_from(JOBS).where(JOBS.c.state.in_(_ACTIVE))
    return int(conn.execute(query).scalar_one())


def victims_query(limit: int, *, lock: bool) -> Select[Any]:
    """The `limit` most evictable jobs (domain/bound.py's order): scheduled, no attempt left
    without an outcome, the lowest priority first, then the latest next retry, the newest."""
    query = (
        select(JOBS)
        .where(JOBS.c.state == _SCHEDULED, JOBS.c.rescues == 0)
        .order_by(JOBS.c.priority, JOBS.c.next_retry_at.desc(), JOBS.c.seq.desc())
        .limit(limit)
    )
    return query.with_for_update(skip_locked=True) if lock else query


def make_room(
    conn: Connection, dialect: str, bound: QueueBound, incoming: Sequence[Job], at: datetime
) -> list[Evicted]:
    """Evict what `bound` says `incoming` needs, or raise QueueFull (nothing written)."""
    postgres = dialect == "postgresql"
    if postgres:
        conn.execute(_LOCK, {"space": _LOCK_SPACE, "key": _LOCK_KEY})
    active = active_count(conn)
    needed = bound.evictions(active, len(incoming))
    lowest: list[Job] = []
    if needed:
        rows = conn.execute(victims_query(needed, lock=postgres)).all()
        lowest = [job_from_row(r) for r in rows]
    evicted = bound.admit(incoming, active, lowest, at)
    if not evicted:
        return []
    for e in evicted:
        check_transition(JobState.SCHEDULED, e.job.state)
    done = conn.execute(
        update(JOBS)
        .where(
            JOBS.c.seq == bindparam("b_seq"),
            JOBS.c.state == _SCHEDULED,
            JOBS.c.rescues == 0,
        )
        .values(
            state=JobState.EVICTED.value,
            reason=bindparam("b_reason"),
            next_retry_at=None,
            updated_at=at,
        )
        .execution_options(synchronize_session=False),
        [{"b_seq": e.job.seq, "b_reason": e.job.reason} for e in evicted],
    )
    if done.rowcount != len(evicted):  # pragma: no cover - the rows are locked or serialised
        raise Refused("the queue changed while room was made; try again")
    write_entries(conn, [e.entry for e in evicted])
    write_rollups(conn, rollups_of(evicted))
    return evicted
