"""Exact counts of a million jobs without reading a million rows: sealed counts.

Final jobs never change (nor do their attempts), and new jobs always take a higher `seq`. So
once every job up to some `seq` (the mark) is final, the counts of those jobs (by state, by
error code, their attempts by number, outcome and codes) stay true until `purge` removes some
of them, and `purge` takes its removals off them in the same transaction. `stats` adds the
counts of the jobs above the mark, read live, to the sealed ones: the same numbers as counting
every row, at the cost of the jobs that are still moving (and those queued since).

The mark moves forward (`seal`) when `stats` finds many jobs above it that could be sealed: in
short transactions, each sealing a range of jobs, sized by time as the purge's batches. The
oldest active job holds the mark back: the jobs after it are counted live.

On PostgreSQL a job's `seq` is taken before its transaction commits, so the sealing takes a
SHARE lock on the jobs for its short transaction: jobs being queued meanwhile are committed
(or not) before it looks for the oldest active one. Sealing and purge both take the mark's row
(FOR UPDATE) before anything else they lock on the jobs, so one never moves it under the other
and neither waits on the other in a circle.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, func, select, text

from payretry.domain.models import FINAL_STATES, JobState
from payretry.store.engine import dialect_insert
from payretry.store.tables import ACTIVE_PREDICATE, ATTEMPTS, JOBS, SEALED

_FINALS = [state.value for state in FINAL_STATES]
_MOVING = [state.value for state in JobState if state not in FINAL_STATES]
_MARK = ("seal", "")
_HIGHEST = 2**63 - 1  # above every SQLite rowid
STATE, ERROR, ATTEMPT = "state", "error", "attempt"
AttemptKey = tuple[int, str, str | None, str | None]  # number, outcome, error, decline code


@dataclass
class Counts:
    by_state: Counter[str] = field(default_factory=Counter)
    by_error: Counter[str] = field(default_factory=Counter)  # the codes jobs were queued after
    attempts: Counter[AttemptKey] = field(default_factory=Counter)

    def add(self, other: Counts) -> None:
        self.by_state.update(other.by_state)
        self.by_error.update(other.by_error)
        self.attempts.update(other.attempts)

    def rows(self) -> list[dict[str, Any]]:
        """As rows of retry_sealed_counts (an attempt's key as a JSON list)."""
        return (
            [{"kind": STATE, "key": k, "n": n} for k, n in self.by_state.items()]
            + [{"kind": ERROR, "key": k, "n": n} for k, n in self.by_error.items()]
            + [
                {"kind": ATTEMPT, "key": json.dumps(list(k)), "n": n}
                for k, n in self.attempts.items()
            ]
        )

    def negated(self) -> Counts:
        return Counts(
            Counter({k: -n for k, n in self.by_state.items()}),
            Counter({k: -n for k, n in self.by_error.items()}),
            Counter({k: -n for k, n in self.attempts.items()}),
        )


def count(conn: Connection, *where: Any) -> Counts:
    """The counts of the jobs `where` selects (conditions on JOBS) and of their attempts."""
    found = Counts()
    _count_jobs(conn, found, *where)
    seqs = select(JOBS.c.seq).where(*where).scalar_subquery()
    _count_attempts(conn, found, ATTEMPTS.c.job_seq.in_(seqs))
    return found


def _count_jobs(conn: Connection, found: Counts, *where: Any) -> None:
    """The jobs by state and by error code, both from one pass."""
    for state, code, n in conn.execute(
        select(JOBS.c.state, JOBS.c.error_code, func.count())
        .where(*where)
        .group_by(JOBS.c.state, JOBS.c.error_code)
    ):
        found.by_state[state] += int(n)
        found.by_error[code] += int(n)


def _count_attempts(conn: Connection, found: Counts, *where: Any) -> None:
    a = ATTEMPTS.c
    columns = (a.number, a.outcome, a.error_code, a.decline_code)
    for number, outcome, error, decline, n in conn.execute(
        select(*columns, func.count()).where(*where).group_by(*columns)
    ):
        found.attempts[(int(number), outcome, error, decline)] += int(n)


def mark(conn: Connection, *, lock: bool = False) -> int:
    """Every job up to this `seq` is final and counted in the sealed counts. With `lock`, the
    mark's row is held until the transaction ends (created first if missing)."""
    if lock:
        _upsert(conn, [{"kind": _MARK[0], "key": _MARK[1], "n": 0}], mode="keep")
    query = select(SEALED.c.n).where(SEALED.c.kind == _MARK[0], SEALED.c.key == _MARK[1])
    if lock:
        query = query.with_for_update()
    found = conn.execute(query).scalar()
    return int(found or 0)


def sealed(conn: Connection) -> tuple[int, Counts]:
    found = Counts()
    at = 0
    for kind, key, n in conn.execute(select(SEALED.c.kind, SEALED.c.key, SEALED.c.n)):
        if (kind, key) == _MARK:
            at = int(n)
        elif kind == STATE:
            found.by_state[key] += int(n)
        elif kind == ERROR:
            found.by_error[key] += int(n)
        elif kind == ATTEMPT:
            number, outcome, error, decline = json.loads(key)
            found.attempts[(int(number), outcome, error, decline)] += int(n)
    return at, found


def above(conn: Connection, at: int) -> Counts:
    """The counts of the jobs above `at` and of their attempts, as `count(conn, seq > at)`:
    the jobs read along their key range from `at` (on SQLite both bounds given, so its
    planner walks the primary key rather than a whole index on state, as statistics taken
    over a million finished jobs make it do), their attempts along the attempts' own key
    (job_seq, number) from `at`, with no list of the jobs' keys to build."""
    found = Counts()
    span = [JOBS.c.seq > at]
    if conn.dialect.name == "sqlite":  # PostgreSQL's planner needs no second bound
        span.append(JOBS.c.seq <= _HIGHEST)
    _count_jobs(conn, found, *span)
    _count_attempts(conn, found, ATTEMPTS.c.job_seq > at)
    return found


def current(conn: Connection) -> Counts:
    """The counts of every job and attempt: sealed, plus the jobs above the mark read live."""
    at, found = sealed(conn)
    found.add(above(conn, at))
    for counter in (found.by_state, found.by_error, found.attempts):
        for key in [k for k, n in counter.items() if n == 0]:
            del counter[key]  # sealed and since purged
    return found


def sealable(conn: Connection) -> int:
    """The highest `seq` up to which every job is final now: below the oldest active job (the
    first entry of the active jobs' index, migration 0011; every state not final is active),
    or the newest job when none is active."""
    oldest = conn.execute(select(func.min(JOBS.c.seq)).where(ACTIVE_PREDICATE)).scalar()
    if oldest is not None:
        return int(oldest) - 1
    return int(conn.execute(select(func.coalesce(func.max(JOBS.c.seq), 0))).scalar_one())


def seal_step(conn: Connection, size: int, limit: int | None = None) -> tuple[int, int]:
    """Seal up to `size` more jobs in the caller's (write) transaction; (sealed, still to go).
    `limit`: what `sealable` said before the steps began (it reads every moving state: about a
    second at a million jobs, too much for each step); each step checks its own range instead,
    so a job that became active again meanwhile (a revival) is never sealed."""
    at = mark(conn, lock=True)  # first, as purge takes it: so neither waits on the other
    if conn.dialect.name == "postgresql":
        conn.execute(text(f"LOCK TABLE {JOBS.name} IN SHARE MODE"))
    upto = sealable(conn) if limit is None else limit
    if upto <= at:
        return 0, 0
    high = min(upto, at + size)
    # `state || ''`: no index on state serves it, so this reads the step's range by key.
    moving = conn.execute(
        select(func.min(JOBS.c.seq)).where(
            JOBS.c.seq > at, JOBS.c.seq <= high, JOBS.c.state.concat("").in_(_MOVING)
        )
    ).scalar()
    if moving is not None:  # an active job inside the range: seal up to it, then stop
        high = upto = int(moving) - 1
        if high <= at:
            return 0, 0
    _upsert(conn, count(conn, JOBS.c.seq > at, JOBS.c.seq <= high).rows(), mode="add")
    _upsert(conn, [{"kind": _MARK[0], "key": _MARK[1], "n": high}], mode="set")
    return high - at, upto - high


def unseal(conn: Connection, at: int, *where: Any) -> None:
    """Take the jobs `where` selects (about to be removed) off the sealed counts, those at or
    below the mark `at` (read with lock=True in this transaction)."""
    gone = count(conn, *where, JOBS.c.seq <= at)
    _upsert(conn, gone.negated().rows(), mode="add")


def reopen(conn: Connection, seq: int) -> None:
    """A final job at `seq` is about to change again (a revival with new card data): call first
    in the transaction, before any job is written (the mark's row, then the job: the order
    sealing and purge take). Jobs from `seq` up to the mark leave the sealed counts and the mark
    moves back below `seq`, so `current` counts them live again."""
    at = mark(conn, lock=True)
    if seq > at:
        return
    unseal(conn, at, JOBS.c.seq >= seq)
    _upsert(conn, [{"kind": _MARK[0], "key": _MARK[1], "n": seq - 1}], mode="set")


def _upsert(conn: Connection, rows: list[dict[str, Any]], *, mode: str) -> None:
    """Write rows: "add" their n to what is there, "set" it, or "keep" what is there."""
    if not rows:
        return
    insert: Any = dialect_insert(conn.dialect.name)
    stmt = insert(SEALED)
    if mode == "keep":
        conn.execute(stmt.on_conflict_do_nothing(index_elements=["kind", "key"]), rows)
        return
    n = SEALED.c.n + stmt.excluded.n if mode == "add" else stmt.excluded.n
    conn.execute(stmt.on_conflict_do_update(index_elements=["kind", "key"], set_={"n": n}), rows)
