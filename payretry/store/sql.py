"""The SQL store: one module for SQLite and PostgreSQL; dialect differences stay in here."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Connection, Engine, bindparam, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError

from payretry.domain.bound import QueueBound
from payretry.domain.card_checks import job_card
from payretry.domain.card_ledger import EntryKind
from payretry.domain.changes import (
    Cancelled,
    ClaimBatch,
    Claimed,
    Finish,
    Held,
    Parked,
    Queued,
    Rescue,
    Settlement,
    WindowClosed,
)
from payretry.domain.models import (
    ACTIVE_STATES,
    Attempt,
    AttemptOutcome,
    Job,
    JobState,
    attempt_key,
    check_transition,
)
from payretry.domain.network_rules import NetworkRules
from payretry.domain.ports import DuplicateActive
from payretry.errors import NotFound, Refused, StoreError
from payretry.store.analytics import AnalyticsMixin, rollups_of, write_rollups
from payretry.store.bound import make_room
from payretry.store.bulk import Arrays, Bulk
from payretry.store.cards import (
    CardLedgerMixin,
    apply_settles,
    check_claims,
    hold,
    insert_entries,
    unclaim,
    write_links,
)
from payretry.store.dispatch import DispatchMixin
from payretry.store.engine import READONLY, describe_url, dialect_insert, make_engine
from payretry.store.housekeeping import HousekeepingMixin
from payretry.store.outbox import OutboxMixin, write_entries
from payretry.store.reports import ReportsMixin
from payretry.store.rows import (
    action_values,
    attempt_from_row,
    attempt_outcome,
    job_from_row,
    job_values,
)
from payretry.store.tables import ATTEMPTS, JOBS
from payretry.store.webhooks import WebhooksMixin, settle_one

_ACTIVE = [state.value for state in ACTIVE_STATES]
_CHUNK = 500
_RUNNING = JobState.RUNNING.value


def _held() -> tuple[ColumnElement[bool], ...]:
    """The lease fence, for statements run once per claimed job (`b_seq`, `b_token`): the job
    is still running under the token its claim gave it. Every write after a claim has it."""
    return (
        JOBS.c.seq == bindparam("b_seq"),
        JOBS.c.lease_token == bindparam("b_token"),
        JOBS.c.state == _RUNNING,
    )


# The lease fence of a finish, read once per batch, straight to the driver (one placeholder per
# job): which of the batch's jobs still run under the token their claim gave them.
_LEASED = "SELECT seq, lease_token FROM retry_jobs WHERE seq IN ({marks}) AND state = {mark}"


# What a finish writes, column <- bind name, for both forms of the statements below (Core for
# SQLite, unnest for PostgreSQL): a column added here reaches both.
_ATTEMPT_OUTCOME = {
    "outcome": "b_outcome",
    "finished_at": "b_finished",
    "error_code": "b_error",
    "decline_code": "b_decline",
    "message": "b_message",
    "reference": "b_reference",
    "decision": "b_decision",
    "next_retry_at": "b_next",
}
_JOB_OUTCOME = {
    "state": "b_state",
    "attempt_count": "b_number",
    "max_attempts": "b_max",
    "next_retry_at": "b_next",
    "reason": "b_reason",
    "policy_code": "b_policy",
    "network_rule": "b_rule",
    "updated_at": "b_finished",
    "action_ref": "b_action_ref",
    "action_url": "b_action_url",
    "action_expires_at": "b_action_expires",
}
_LEASE_GIVEN_BACK = {"lease_token": None, "lease_expires_at": None, "rescues": 0}


def _finish_attempt() -> Any:
    """An attempt's outcome, written only while its job is still held (built once: store/bulk)."""
    fenced = select(JOBS.c.seq).where(*_held())
    return (
        update(ATTEMPTS)
        .where(
            ATTEMPTS.c.job_seq == bindparam("b_seq"),
            ATTEMPTS.c.number == bindparam("b_number"),
            fenced.exists(),
        )
        .values({column: bindparam(name) for column, name in _ATTEMPT_OUTCOME.items()})
    )


def _finish_job() -> Any:
    """The job's state after an outcome, fenced by the lease, the lease given back."""
    return (
        update(JOBS)
        .where(*_held())
        .values(
            {
                **{column: bindparam(name) for column, name in _JOB_OUTCOME.items()},
                **_LEASE_GIVEN_BACK,
            }
        )
    )


# PostgreSQL: a run-due batch's outcomes, one statement each (bulk.Arrays) over `v`, the
# unnested rows. The fence is _held()'s, per row of `v`.
_PG_FENCE = f"j.seq = v.b_seq AND j.lease_token = v.b_token AND j.state = '{_RUNNING}'"


def _pg_set(outcome: dict[str, str], constants: dict[str, Any] | None = None) -> str:
    sets = [f"{column} = v.{name}" for column, name in outcome.items()]
    sets += [f"{c} = {'NULL' if v is None else v}" for c, v in (constants or {}).items()]
    return ", ".join(sets)


_PG_FINISH_ATTEMPTS = (
    f"UPDATE retry_attempts AS a SET {_pg_set(_ATTEMPT_OUTCOME)} FROM {{rows}}"
    f" WHERE a.job_seq = v.b_seq AND a.number = v.b_number"
    f" AND EXISTS (SELECT 1 FROM retry_jobs AS j WHERE {_PG_FENCE})"
)
_PG_FINISH_JOBS = (
    f"UPDATE retry_jobs AS j SET {_pg_set(_JOB_OUTCOME, _LEASE_GIVEN_BACK)}"
    f" FROM {{rows}} WHERE {_PG_FENCE}"
)
# Each bind once, typed by the column it is written to (b_next and b_finished serve both).
_PG_FINISH_ROW = list(
    {
        name: (name, column)
        for name, column in [
            ("b_seq", JOBS.c.seq),
            ("b_token", JOBS.c.lease_token),
            *((name, ATTEMPTS.c[c]) for c, name in _ATTEMPT_OUTCOME.items()),
            *((name, JOBS.c[c]) for c, name in _JOB_OUTCOME.items()),
        ]
    }.values()
)


class SqlStore(
    ReportsMixin,
    HousekeepingMixin,
    DispatchMixin,
    OutboxMixin,
    CardLedgerMixin,
    AnalyticsMixin,
    WebhooksMixin,
):
    """Jobs and attempts in SQL. Each method is one short transaction; each change writes its
    events (store/outbox.py) and its card-ledger entries (store/cards.py) in that same
    transaction."""

    def __init__(self, engine: Engine, url: str) -> None:
        self.engine = engine
        self.url = url
        self.dialect = engine.dialect.name
        self._insert = dialect_insert(self.dialect)

    @classmethod
    def open(
        cls,
        url: str,
        *,
        auto_migrate: bool = False,
        pool_size: int = 5,
        statement_timeout: timedelta = timedelta(seconds=30),
    ) -> SqlStore:
        from payretry.store.migrate import ensure_schema

        engine = make_engine(url, pool_size=pool_size, statement_timeout=statement_timeout)
        try:
            ensure_schema(engine, url, auto_migrate=auto_migrate)
        except BaseException:
            engine.dispose()
            raise
        return cls(engine, url)

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _tx(self, *, readonly: bool = False) -> Iterator[Connection]:
        try:
            if readonly:
                with self.engine.connect().execution_options(**{READONLY: True}) as conn:
                    with conn.begin():
                        yield conn
            else:
                with self.engine.begin() as conn:
                    yield conn
        except (OperationalError, InterfaceError) as exc:
            raise StoreError(f"database {describe_url(self.url)} failed: {exc.orig}") from None

    # -- reading -------------------------------------------------------------------------------

    def _attempts(self, conn: Connection, seqs: Sequence[int]) -> dict[int, list[Attempt]]:
        found: dict[int, list[Attempt]] = defaultdict(list)
        for start in range(0, len(seqs), _CHUNK):
            rows = conn.execute(
                select(ATTEMPTS)
                .where(ATTEMPTS.c.job_seq.in_(seqs[start : start + _CHUNK]))
                .order_by(ATTEMPTS.c.job_seq, ATTEMPTS.c.number)
            )
            for row in rows:
                found[row.job_seq].append(attempt_from_row(row))
        return found

    def _jobs(self, conn: Connection, rows: Sequence[Any], with_attempts: bool) -> list[Job]:
        attempts = self._attempts(conn, [r.seq for r in rows]) if with_attempts else {}
        return [job_from_row(r, attempts.get(r.seq, ())) for r in rows]

    def get(self, job_id: str, *, with_attempts: bool = True) -> Job | None:
        with self._tx(readonly=True) as conn:
            rows = conn.execute(select(JOBS).where(JOBS.c.id == job_id)).all()
            jobs = self._jobs(conn, rows, with_attempts)
        return jobs[0] if jobs else None

    def find(self, transaction_id: str) -> Job | None:
        with self._tx(readonly=True) as conn:
            row = conn.execute(
                select(JOBS)
                .where(JOBS.c.transaction_id == transaction_id)
                .order_by(JOBS.c.state.in_(_ACTIVE).desc(), JOBS.c.seq.desc())
                .limit(1)
            ).first()
            jobs = self._jobs(conn, [row], True) if row else []
        return jobs[0] if jobs else None

    def active_for(self, transaction_ids: Sequence[str]) -> dict[str, Job]:
        found: dict[str, Job] = {}
        with self._tx(readonly=True) as conn:
            for start in range(0, len(transaction_ids), _CHUNK):
                chunk = transaction_ids[start : start + _CHUNK]
                # Filter the state here, not in SQL: given a state term, SQLite's planner may
                # walk an index on state (every scheduled job) instead of the transaction index.
                rows = conn.execute(select(JOBS).where(JOBS.c.transaction_id.in_(chunk))).all()
                found.update(
                    {r.transaction_id: job_from_row(r) for r in rows if r.state in _ACTIVE}
                )
        return found

    def succeeded_for(self, transaction_ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        with self._tx(readonly=True) as conn:
            for start in range(0, len(transaction_ids), _CHUNK):
                chunk = transaction_ids[start : start + _CHUNK]
                rows = conn.execute(  # the state is filtered here, as in active_for
                    select(JOBS.c.transaction_id, JOBS.c.state).where(
                        JOBS.c.transaction_id.in_(chunk)
                    )
                )
                found.update(r.transaction_id for r in rows if r.state == JobState.SUCCEEDED)
        return found

    def list_jobs(
        self,
        *,
        state: JobState | None = None,
        user_id: str | None = None,
        due_at: datetime | None = None,
        limit: int = 100,
    ) -> list[Job]:
        query = select(JOBS)
        if due_at is not None:
            query = query.where(
                JOBS.c.state == JobState.SCHEDULED.value, JOBS.c.next_retry_at <= due_at
            ).order_by(JOBS.c.priority.desc(), JOBS.c.next_retry_at, JOBS.c.seq)
        else:
            query = query.order_by(JOBS.c.seq.desc())
        if state is not None:
            query = query.where(JOBS.c.state == state.value)
        if user_id is not None:
            query = query.where(JOBS.c.user_id == user_id)
        with self._tx(readonly=True) as conn:
            rows = conn.execute(query.limit(limit)).all()
            return self._jobs(conn, rows, True)

    def due_preview(self, now: datetime, limit: int) -> list[Job]:
        with self._tx(readonly=True) as conn:
            rows = conn.execute(self._due_query(now, limit)).all()
            return self._jobs(conn, rows, False)

    # -- writing -------------------------------------------------------------------------------

    def insert(self, queued: Queued, *, bound: QueueBound | None = None) -> Job:
        job = queued.job
        try:
            with self._tx() as conn:
                if bound is not None:  # a full queue makes room first (store/bound.py)
                    make_room(conn, self.dialect, bound, [job], job.created_at)
                conn.execute(JOBS.insert().values(**job_values(job)))
                self._write_cards(conn, [queued])
                write_entries(conn, [queued.entry])
        except IntegrityError:
            raise DuplicateActive(job.transaction_id) from None
        stored = self.get(job.id)
        assert stored is not None
        return stored

    def insert_many(self, queued: Sequence[Queued], *, bound: QueueBound | None = None) -> None:
        if not queued:
            return
        # In the order the claim walks them (the due index), so the runs that follow change
        # neighbouring pages: run-due over a file of 30,000 jobs stored in the order of its
        # lines took 1.2 to 1.6 times as long, most of it the system's time writing pages.
        queued = Queued.in_claim_order(queued)
        dialect = self.engine.dialect
        keys = list(job_values(queued[0].job))
        # PostgreSQL: each chunk as one INSERT ... SELECT FROM unnest(arrays) (store/bulk.py
        # Arrays): executemany, even pipelined, has the server plan and run every row alone.
        insert: Bulk | Arrays = (
            Arrays.insert("insert_jobs", dialect, JOBS, keys)
            if dialect.name == "postgresql"
            else Bulk.of("insert_jobs", dialect, JOBS.insert, column_keys=keys)
        )
        try:
            with self._tx() as conn:
                if bound is not None:
                    jobs = [q.job for q in queued]
                    make_room(conn, self.dialect, bound, jobs, jobs[0].created_at)
                for start in range(0, len(queued), 5000):
                    chunk = queued[start : start + 5000]
                    insert.run(conn, [job_values(q.job) for q in chunk])
                    self._write_cards(conn, chunk)
                    write_entries(conn, Queued.entries(chunk))
        except IntegrityError:
            raise DuplicateActive("another job became active meanwhile; nothing written") from None

    def _write_cards(self, conn: Connection, queued: Sequence[Queued]) -> None:
        """The queueing declines, and the links of jobs that came with both a payment method
        and their card."""
        insert_entries(conn, [q.card_entry for q in queued if q.card_entry is not None])
        links = [
            link
            for q in queued
            if q.card_entry is not None
            and (card := job_card(q.job)) is not None
            and (link := card.link) is not None
        ]
        write_links(conn, self._insert, links)

    def cancel(self, cancelled: Cancelled) -> Job:
        seen = cancelled.job
        with self._tx() as conn:
            row = conn.execute(select(JOBS).where(JOBS.c.id == seen.id)).first()
            if row is None:
                raise NotFound(f"no job {seen.id}")
            state = JobState(row.state)
            if state is JobState.RUNNING:
                raise Refused("an attempt is in progress; cancel again once it has finished")
            check_transition(state, JobState.CANCELLED)
            done = conn.execute(
                update(JOBS)
                .where(
                    JOBS.c.id == seen.id,
                    JOBS.c.state == seen.state.value,
                    JOBS.c.attempt_count == seen.attempt_count,
                )
                .values(
                    state=JobState.CANCELLED.value,
                    reason=cancelled.reason,
                    next_retry_at=None,
                    updated_at=cancelled.at,
                )
            )
            if not done.rowcount:  # an attempt started or ended since the caller looked
                raise Refused("the job changed while it was being cancelled; look again")
            write_entries(conn, [cancelled.entry])
            write_rollups(conn, cancelled.rollups)
        job = self.get(seen.id)
        assert job is not None
        return job

    def rescue(self, now: datetime, *, max_rescues: int = 3) -> Rescue:
        expired = (JOBS.c.state == _RUNNING, JOBS.c.lease_expires_at <= now)
        with self._tx() as conn:
            poison = conn.execute(
                select(JOBS.c.seq, JOBS.c.attempt_count, JOBS.c.rescues).where(
                    *expired, JOBS.c.rescues >= max_rescues
                )
            ).all()
            parked: list[Job] = []
            if poison:
                rows = conn.execute(
                    update(JOBS)
                    .where(JOBS.c.seq == bindparam("b_seq"), *expired)
                    .values(
                        state=JobState.PARKED.value,
                        lease_token=None,
                        lease_expires_at=None,
                        next_retry_at=None,
                        reason=bindparam("b_reason"),
                        updated_at=now,
                    )
                    .returning(*JOBS.c),
                    [
                        {"b_seq": r.seq, "b_reason": Parked.reason(r.attempt_count + 1, r.rescues)}
                        for r in poison
                    ],
                ).all()
                parked = [job_from_row(r) for r in rows]
                write_entries(conn, [Parked(job, now).entry for job in parked])
            result = conn.execute(
                update(JOBS)
                .where(*expired, JOBS.c.rescues < max_rescues)
                .values(
                    state=JobState.SCHEDULED.value,
                    lease_token=None,
                    lease_expires_at=None,
                    rescues=JOBS.c.rescues + 1,
                    reason="lease expired; rescued without counting an attempt",
                    updated_at=now,
                )
            )
            return Rescue(int(result.rowcount or 0), tuple(parked))

    def abandon_expired(self, now: datetime) -> list[Job]:
        with self._tx() as conn:
            rows = conn.execute(
                update(JOBS)
                .where(JOBS.c.state == JobState.SCHEDULED.value, JOBS.c.expires_at <= now)
                .values(
                    state=JobState.ABANDONED.value,
                    reason="the payment window closed before the next attempt could be made",
                    next_retry_at=None,
                    updated_at=now,
                )
                .returning(*JOBS.c)
            ).all()
            jobs = [job_from_row(r) for r in rows]
            closed = [WindowClosed(job, now) for job in jobs]
            write_entries(conn, [c.entry for c in closed])
            write_rollups(conn, rollups_of(closed))
        return jobs

    def _due_query(self, now: datetime, limit: int) -> Any:
        return (
            select(JOBS)
            .where(JOBS.c.state == JobState.SCHEDULED.value, JOBS.c.next_retry_at <= now)
            .order_by(JOBS.c.priority.desc(), JOBS.c.next_retry_at, JOBS.c.seq)
            .limit(limit)
        )

    def claim(
        self,
        now: datetime,
        limit: int,
        lease_for: timedelta,
        *,
        job_id: str | None = None,
        rules: NetworkRules | None = None,
    ) -> ClaimBatch:
        """Take up to `limit` due jobs in priority order under a new lease and write their
        attempt rows, in one short transaction. Jobs with a card identity are checked against
        their card's ledger first (store/cards.py): one the network rules hold is postponed or
        blocked in this same transaction instead of attempted."""
        token = uuid.uuid4().hex
        expires = now + lease_for
        # An operator's retry (by job id) may also take a parked job, whatever its due time.
        claimable = [JobState.SCHEDULED.value]
        if job_id is not None:
            claimable.append(JobState.PARKED.value)
        with self._tx() as conn:
            if job_id is not None:
                picked = select(JOBS.c.seq).where(JOBS.c.id == job_id, JOBS.c.state.in_(claimable))
            else:
                picked = (
                    select(JOBS.c.seq)
                    .where(JOBS.c.state == JobState.SCHEDULED.value, JOBS.c.next_retry_at <= now)
                    .order_by(JOBS.c.priority.desc(), JOBS.c.next_retry_at, JOBS.c.seq)
                    .limit(limit)
                )
            lease = {
                "state": JobState.RUNNING.value,
                "lease_token": token,
                "lease_expires_at": expires,
                "updated_at": now,
            }
            if self.dialect == "postgresql":
                # One statement: the CTE picks due rows in priority order, skipping rows other
                # workers hold, and its LIMIT bounds the UPDATE (a plain `IN (subquery)` may be
                # planned to lock or update more rows than the limit).
                due = picked.with_for_update(skip_locked=True).cte("due")
                rows = list(
                    conn.execute(
                        update(JOBS)
                        .where(JOBS.c.seq.in_(select(due.c.seq)))
                        .values(**lease)
                        .returning(*JOBS.c)
                    )
                )
                rows.sort(key=lambda r: (-r.priority, r.next_retry_at or now, r.seq))
            else:
                # SQLite: BEGIN IMMEDIATE already holds the write lock; select, then update.
                seqs = list(conn.execute(picked).scalars())
                if not seqs:
                    return ClaimBatch()
                rows = list(
                    conn.execute(
                        update(JOBS)
                        .where(
                            JOBS.c.seq.in_(seqs),
                            # `state || ''`: the same test, but no index can serve it, so SQLite
                            # finds the rows by primary key instead of walking an index on state
                            # through every scheduled job (a scan per batch, quadratic overall).
                            JOBS.c.state.concat("").in_(claimable),
                        )
                        .values(**lease)
                        .returning(*JOBS.c)
                    )
                )
                order = {seq: i for i, seq in enumerate(seqs)}
                rows.sort(key=lambda r: order[r.seq])
            if not rows:
                return ClaimBatch()
            jobs = [job_from_row(row) for row in rows]
            checks, entries = check_claims(conn, jobs, now, rules or NetworkRules())
            claimed: list[Claimed] = []
            held: list[Held] = []
            attempt_rows = []
            for row, job, card in zip(rows, jobs, checks, strict=True):
                if isinstance(card, Held):
                    held.append(card)
                    continue
                number = job.attempt_count + 1
                key = attempt_key(job.id, number)
                claimed.append(Claimed(job, number, key, token, card))
                attempt_rows.append(
                    {
                        "job_seq": row.seq,
                        "number": number,
                        "idempotency_key": key,
                        "outcome": AttemptOutcome.PENDING.value,
                        "started_at": now,
                    }
                )
            hold(conn, held, token)
            write_rollups(conn, rollups_of(held))
            insert_entries(conn, entries)
            # A rescued attempt keeps its row (and so its key): insert only what is missing.
            if attempt_rows and self.dialect == "postgresql":
                Arrays.insert(
                    "insert_attempts",
                    conn.dialect,
                    ATTEMPTS,
                    list(attempt_rows[0]),
                    suffix="ON CONFLICT (job_seq, number) DO NOTHING",
                ).run(conn, attempt_rows)
            elif attempt_rows:
                Bulk.of(
                    "insert_attempts",
                    self.engine.dialect,
                    lambda: self._insert(ATTEMPTS).on_conflict_do_nothing(
                        index_elements=["job_seq", "number"]
                    ),
                    column_keys=list(attempt_rows[0]),
                ).run(conn, attempt_rows)
            write_entries(conn, [c.entry for c in claimed] + [h.entry for h in held])
        return ClaimBatch(claimed, held)

    def finish(self, finishes: Sequence[Finish]) -> list[bool]:
        if not finishes:
            return []
        params = []
        for f in finishes:
            check_transition(JobState.RUNNING, f.decision.state)
            params.append(
                {
                    **action_values(f.result),
                    "b_seq": f.claimed.job.seq,
                    "b_token": f.claimed.lease_token,
                    "b_number": f.claimed.attempt_number,
                    "b_outcome": attempt_outcome(f.result).value,
                    "b_finished": f.finished_at,
                    "b_error": f.result.error_code,
                    "b_decline": f.result.decline_code,
                    "b_message": f.result.message,
                    "b_reference": f.result.reference,
                    "b_decision": f.decision.outcome.value,
                    "b_next": f.decision.next_retry_at,
                    "b_state": f.decision.state.value,
                    "b_max": f.decision.max_attempts or f.claimed.job.max_attempts,
                    "b_reason": f.decision.reason,
                    "b_policy": f.decision.row.code,
                    "b_rule": f.decision.rule,
                }
            )
        with self._tx() as conn:
            applied = self._still_leased(conn, [f.claimed for f in finishes])
            if not all(applied):
                params = [p for p, ok in zip(params, applied, strict=True) if ok]
            if params:
                self._write_outcomes(conn, params)
                done = [f for f, ok in zip(finishes, applied, strict=True) if ok]
                settles = [
                    (settled, f.claimed.job) for f in done if (settled := f.ledger) is not None
                ]
                apply_settles(conn, self._insert, settles)
                write_entries(conn, [f.entry for f in done])
                write_rollups(conn, rollups_of(done))
        return applied

    def _write_outcomes(self, conn: Connection, params: list[dict[str, Any]]) -> None:
        """The attempts' outcomes, then their jobs' states, each fenced by the lease."""
        dialect = conn.dialect
        # As a set, a job listed twice would be updated once: such a batch goes row by row.
        if self.dialect == "postgresql" and len({p["b_seq"] for p in params}) == len(params):
            Arrays.of("finish_attempts", dialect, _PG_FINISH_ATTEMPTS, _PG_FINISH_ROW).run(
                conn, params
            )
            Arrays.of("finish_jobs", dialect, _PG_FINISH_JOBS, _PG_FINISH_ROW).run(conn, params)
            return
        Bulk.of("finish_attempt", dialect, _finish_attempt).run(conn, params)
        Bulk.of("finish_job", dialect, _finish_job).run(conn, params)

    def _still_leased(self, conn: Connection, claims: Sequence[Claimed]) -> list[bool]:
        held: set[tuple[int, str]] = set()
        pairs = [(c.job.seq, c.lease_token) for c in claims]
        mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
        for start in range(0, len(pairs), _CHUNK):
            seqs = [seq for seq, _ in pairs[start : start + _CHUNK]]
            sql = _LEASED.format(marks=", ".join([mark] * len(seqs)), mark=mark)
            rows = conn.exec_driver_sql(sql, (*seqs, _RUNNING))
            held.update((seq, token) for seq, token in rows)
        return [pair in held for pair in pairs]

    def extend_leases(self, claimed: Sequence[Claimed], until: datetime) -> int:
        if not claimed:
            return 0
        params = [{"b_seq": c.job.seq, "b_token": c.lease_token} for c in claimed]
        with self._tx() as conn:
            result = conn.execute(
                update(JOBS).where(*_held()).values(lease_expires_at=until), params
            )
            return int(result.rowcount or 0)

    def release(self, claimed: Sequence[Claimed], now: datetime) -> int:
        """Give back claimed jobs that were never sent: scheduled again, attempt row removed."""
        if not claimed:
            return 0
        params = [
            {
                "b_seq": c.job.seq,
                "b_token": c.lease_token,
                "b_number": c.attempt_number,
                "b_claimed_at": c.job.updated_at,
            }
            for c in claimed
        ]
        with self._tx() as conn:
            # Their card-ledger entries first, while the lease fence still holds.
            sent = [
                (c, entry)
                for c in claimed
                if c.card is not None
                and (entry := c.card.entry_of(c.job.id, c.attempt_number)) is not None
                and entry.kind is EntryKind.ATTEMPT
                and entry.at == c.job.updated_at  # this claim's: a re-send keeps the first
            ]
            if sent:
                held = self._still_leased(conn, [c for c, _ in sent])
                unclaim(conn, [e for (_, e), ok in zip(sent, held, strict=True) if ok])
            conn.execute(
                ATTEMPTS.delete().where(
                    ATTEMPTS.c.job_seq == bindparam("b_seq"),
                    ATTEMPTS.c.number == bindparam("b_number"),
                    ATTEMPTS.c.outcome == AttemptOutcome.PENDING.value,
                    # Only a row this claim wrote: a re-sent attempt keeps its first send time.
                    ATTEMPTS.c.started_at == bindparam("b_claimed_at"),
                    select(JOBS.c.seq).where(*_held()).exists(),
                ),
                params,
            )
            result = conn.execute(
                update(JOBS)
                .where(*_held())
                .values(
                    state=JobState.SCHEDULED.value,
                    lease_token=None,
                    lease_expires_at=None,
                    updated_at=now,
                ),
                params,
            )
            return int(result.rowcount or 0)

    # -- waiting on the customer (Checkout) -----------------------------------------------------

    def awaiting(self, *, after_seq: int = 0, limit: int = 200) -> list[Job]:
        with self._tx(readonly=True) as conn:
            rows = conn.execute(
                select(JOBS)
                .where(JOBS.c.state == JobState.AWAITING_PAYER.value, JOBS.c.seq > after_seq)
                .order_by(JOBS.c.seq)
                .limit(limit)
            ).all()
            return self._jobs(conn, rows, False)

    def settle_awaiting(self, settlements: Sequence[Settlement]) -> list[bool]:
        """Each settlement applies only while its job still awaits that same attempt, so two
        runners checking one session record its end once."""
        with self._tx() as conn:
            return [settle_one(conn, s) for s in settlements]


def open_store(
    url: str,
    *,
    auto_migrate: bool = False,
    pool_size: int = 5,
    statement_timeout: timedelta = timedelta(seconds=30),
) -> SqlStore:
    """Open the store at `url`; a new database gets the schema, an old one is refused."""
    try:
        return SqlStore.open(
            url,
            auto_migrate=auto_migrate,
            pool_size=pool_size,
            statement_timeout=statement_timeout,
        )
    except DBAPIError as exc:  # pragma: no cover - ensure_schema maps the common ones
        raise StoreError(f"cannot open database {describe_url(url)}: {exc.orig}") from None


__all__ = ["SqlStore", "open_store"]
