"""The SQL store: one module for SQLite and PostgreSQL; dialect differences stay in here."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from operator import itemgetter
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import Connection, Engine, bindparam, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError

from payretry.domain.models import (
    ACTIVE_STATES,
    FINAL_STATES,
    Attempt,
    AttemptOutcome,
    CustomerAction,
    Job,
    JobState,
    ProcessorRefs,
    attempt_key,
    check_transition,
)
from payretry.domain.money import Money
from payretry.domain.ports import (
    AttemptResult,
    Claimed,
    DuplicateActive,
    Finish,
    Settlement,
    Stats,
    WorkerBeat,
)
from payretry.errors import NotFound, Refused, StoreError
from payretry.store.engine import READONLY, describe_url, make_engine
from payretry.store.tables import ATTEMPTS, JOBS, WORKERS, UTCDateTime

_ACTIVE = [state.value for state in ACTIVE_STATES]
_UNFINISHED = [AttemptOutcome.PENDING.value, AttemptOutcome.AWAITING.value]
_CHUNK = 500


class _Bulk:
    """One statement for many rows, handed straight to the driver.

    Core's executemany builds and processes a parameter dict per row, which costs several
    times what SQLite itself spends on a bulk queue or a run-due batch. A _Bulk compiles its
    statement once per dialect and binds every value with the processor Core itself would use,
    so what is stored is the same; each distinct time is bound once per call (a bulk queue
    shares one "now"). Rows are mappings of bind names; names a row lacks take the statement's
    own constants.
    """

    # Per dialect instance (so per engine): compiled SQL may depend on the server's version.
    _compiled: WeakKeyDictionary[Any, dict[str, _Bulk]] = WeakKeyDictionary()

    def __init__(self, stmt: Any, dialect: Any, column_keys: Sequence[str] | None) -> None:
        compiled: Any = stmt.compile(dialect=dialect, column_keys=column_keys)
        self.sql: str = compiled.string
        self.positional = bool(compiled.positional)
        values: dict[str, Any] = compiled.params
        self.names = list(compiled.positiontup) if self.positional else list(values)
        # Binds with a value of their own (`state = 'running'`, `lease_token = NULL`); the
        # rest come from the rows.
        self.constants = {
            name: values.get(name) for name in self.names if not compiled.binds[name].required
        }
        processors: dict[str, Any] = compiled._bind_processors  # what Core applies per row
        self.processors = [
            (index, processors[name], isinstance(compiled.binds[name].type, UTCDateTime))
            for index, name in enumerate(self.names)
            if processors.get(name) is not None
        ]

    @classmethod
    def of(
        cls, key: str, dialect: Any, build: Any, column_keys: Sequence[str] | None = None
    ) -> _Bulk:
        """The statement `key` names, compiled on first use; `build` makes it. A key stands
        for one fixed statement (and column set): a variant needs a key of its own."""
        known = cls._compiled.setdefault(dialect, {})
        found = known.get(key)
        if found is None:
            found = known[key] = cls(build(), dialect, column_keys)
        return found

    def params(self, rows: Iterable[Mapping[str, Any]]) -> list[Any]:
        names, constants = self.names, self.constants
        get = itemgetter(*names)
        processors = [
            (index, _memo(process) if is_time else process)
            for index, process, is_time in self.processors
        ]
        bound: list[Any] = []
        for row in rows:
            picked = get(row if constants.keys() <= row.keys() else {**constants, **row})
            values = list(picked) if len(names) > 1 else [picked]
            for index, process in processors:
                values[index] = process(values[index])
            if self.positional:
                bound.append(tuple(values))
            else:
                bound.append(dict(zip(names, values, strict=True)))
        return bound

    def run(self, conn: Connection, rows: Iterable[Mapping[str, Any]]) -> Any:
        return conn.exec_driver_sql(self.sql, self.params(rows))


def _memo(process: Any) -> Any:
    bound: dict[Any, Any] = {}

    def once(value: Any) -> Any:
        try:
            return bound[value]
        except KeyError:
            result = bound[value] = process(value)
            return result

    return once


def _job_from_row(row: Any, attempts: Sequence[Attempt] = ()) -> Job:
    r = row._mapping  # by key: several times cheaper than a Row's attributes
    return Job(
        id=r["id"],
        transaction_id=r["transaction_id"],
        user_id=r["user_id"],
        money=Money(r["amount_minor"], r["currency"]),
        error_code=r["error_code"],
        decline_code=r["decline_code"],
        error_message=r["error_message"],
        state=JobState(r["state"]),
        attempt_count=r["attempt_count"],
        max_attempts=r["max_attempts"],
        next_retry_at=r["next_retry_at"],
        created_at=r["created_at"],
        updated_at=r["updated_at"],
        expires_at=r["expires_at"],
        priority=r["priority"],
        refs=ProcessorRefs(
            r["payment_intent"], r["customer"], r["payment_method"], r["checkout_session"]
        ),
        metadata=dict(r["meta"] or {}),
        reason=r["reason"],
        policy_code=r["policy_code"],
        lease_token=r["lease_token"],
        lease_expires_at=r["lease_expires_at"],
        seq=r["seq"],
        attempts=tuple(attempts),
        action=(
            CustomerAction(r["action_ref"], r["action_url"], r["action_expires_at"])
            if r["action_ref"]
            else None
        ),
    )


def _attempt_outcome(result: AttemptResult) -> AttemptOutcome:
    if result.succeeded:
        return AttemptOutcome.SUCCEEDED
    return AttemptOutcome.AWAITING if result.awaiting else AttemptOutcome.FAILED


def _action_values(result: AttemptResult) -> dict[str, Any]:
    action = result.action
    return {
        "b_action_ref": action.ref if action else None,
        "b_action_url": action.url if action else None,
        "b_action_expires": action.expires_at if action else None,
    }


def _attempt_from_row(row: Any) -> Attempt:
    return Attempt(
        number=row.number,
        idempotency_key=row.idempotency_key,
        outcome=AttemptOutcome(row.outcome),
        started_at=row.started_at,
        finished_at=row.finished_at,
        error_code=row.error_code,
        decline_code=row.decline_code,
        message=row.message,
        reference=row.reference,
        decision=row.decision,
        next_retry_at=row.next_retry_at,
    )


def _job_values(job: Job) -> dict[str, Any]:
    return {
        "id": job.id,
        "transaction_id": job.transaction_id,
        "user_id": job.user_id,
        "amount_minor": job.money.amount_minor,
        "currency": job.money.currency,
        "error_code": job.error_code,
        "decline_code": job.decline_code,
        "error_message": job.error_message,
        "state": job.state.value,
        "attempt_count": job.attempt_count,
        "max_attempts": job.max_attempts,
        "next_retry_at": job.next_retry_at,
        "created_at": job.created_at,
        "updated_at": job.updated_at,
        "expires_at": job.expires_at,
        "priority": job.priority,
        "payment_intent": job.refs.payment_intent,
        "customer": job.refs.customer,
        "payment_method": job.refs.payment_method,
        "checkout_session": job.refs.checkout_session,
        "meta": dict(job.metadata),
        "reason": job.reason,
        "policy_code": job.policy_code,
        "lease_token": None,
        "lease_expires_at": None,
        "action_ref": job.action.ref if job.action else None,
        "action_url": job.action.url if job.action else None,
        "action_expires_at": job.action.expires_at if job.action else None,
    }


class SqlStore:
    """Jobs and attempts in SQL. Each method is one short transaction."""

    def __init__(self, engine: Engine, url: str) -> None:
        self.engine = engine
        self.url = url
        self.dialect = engine.dialect.name
        self._insert = postgresql.insert if self.dialect == "postgresql" else sqlite.insert

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
                found[row.job_seq].append(_attempt_from_row(row))
        return found

    def _jobs(self, conn: Connection, rows: Sequence[Any], with_attempts: bool) -> list[Job]:
        attempts = self._attempts(conn, [r.seq for r in rows]) if with_attempts else {}
        return [_job_from_row(r, attempts.get(r.seq, ())) for r in rows]

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
                    {r.transaction_id: _job_from_row(r) for r in rows if r.state in _ACTIVE}
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

    def insert(self, job: Job) -> Job:
        try:
            with self._tx() as conn:
                conn.execute(JOBS.insert().values(**_job_values(job)))
        except IntegrityError:
            raise DuplicateActive(job.transaction_id) from None
        stored = self.get(job.id)
        assert stored is not None
        return stored

    def insert_many(self, jobs: Sequence[Job]) -> None:
        if not jobs:
            return
        insert = _Bulk.of(
            "insert_jobs", self.engine.dialect, JOBS.insert, column_keys=list(_job_values(jobs[0]))
        )
        try:
            with self._tx() as conn:
                for start in range(0, len(jobs), 5000):
                    insert.run(conn, [_job_values(j) for j in jobs[start : start + 5000]])
        except IntegrityError:
            raise DuplicateActive("another job became active meanwhile; nothing written") from None

    def cancel(self, job_id: str, now: datetime, reason: str) -> Job:
        with self._tx() as conn:
            row = conn.execute(select(JOBS.c.state).where(JOBS.c.id == job_id)).first()
            if row is None:
                raise NotFound(f"no job {job_id}")
            state = JobState(row.state)
            if state is JobState.RUNNING:
                raise Refused("an attempt is in progress; cancel again once it has finished")
            check_transition(state, JobState.CANCELLED)
            conn.execute(
                update(JOBS)
                .where(JOBS.c.id == job_id, JOBS.c.state == state.value)
                .values(
                    state=JobState.CANCELLED.value,
                    reason=reason,
                    next_retry_at=None,
                    updated_at=now,
                )
            )
        job = self.get(job_id)
        assert job is not None
        return job

    def rescue(self, now: datetime) -> int:
        with self._tx() as conn:
            result = conn.execute(
                update(JOBS)
                .where(JOBS.c.state == JobState.RUNNING.value, JOBS.c.lease_expires_at <= now)
                .values(
                    state=JobState.SCHEDULED.value,
                    lease_token=None,
                    lease_expires_at=None,
                    reason="lease expired; rescued without counting an attempt",
                    updated_at=now,
                )
            )
            return int(result.rowcount or 0)

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
        return [_job_from_row(r) for r in rows]

    def _due_query(self, now: datetime, limit: int) -> Any:
        return (
            select(JOBS)
            .where(JOBS.c.state == JobState.SCHEDULED.value, JOBS.c.next_retry_at <= now)
            .order_by(JOBS.c.priority.desc(), JOBS.c.next_retry_at, JOBS.c.seq)
            .limit(limit)
        )

    def claim(
        self, now: datetime, limit: int, lease_for: timedelta, *, job_id: str | None = None
    ) -> list[Claimed]:
        """Take up to `limit` due jobs in priority order under a new lease and write their
        attempt rows, in one short transaction."""
        token = uuid.uuid4().hex
        expires = now + lease_for
        with self._tx() as conn:
            if job_id is not None:
                picked = select(JOBS.c.seq).where(
                    JOBS.c.id == job_id, JOBS.c.state == JobState.SCHEDULED.value
                )
            else:
                picked = (
                    select(JOBS.c.seq)
                    .where(JOBS.c.state == JobState.SCHEDULED.value, JOBS.c.next_retry_at <= now)
                    .order_by(JOBS.c.priority.desc(), JOBS.c.next_retry_at, JOBS.c.seq)
                    .limit(limit)
                )
            if self.dialect == "postgresql":
                picked = picked.with_for_update(skip_locked=True)
            seqs = list(conn.execute(picked).scalars())
            if not seqs:
                return []
            rows = list(
                conn.execute(
                    update(JOBS)
                    .where(
                        JOBS.c.seq.in_(seqs),
                        # `state || ''`: the same test, but no index can serve it, so SQLite
                        # finds the rows by primary key instead of walking an index on state
                        # through every scheduled job (a scan per batch, quadratic overall).
                        JOBS.c.state.concat("") == JobState.SCHEDULED.value,
                    )
                    .values(
                        state=JobState.RUNNING.value,
                        lease_token=token,
                        lease_expires_at=expires,
                        updated_at=now,
                    )
                    .returning(*JOBS.c)
                )
            )
            order = {seq: i for i, seq in enumerate(seqs)}
            rows.sort(key=lambda r: order[r.seq])
            claimed = []
            attempt_rows = []
            for row in rows:
                job = _job_from_row(row)
                number = job.attempt_count + 1
                key = attempt_key(job.id, number)
                claimed.append(Claimed(job, number, key, token))
                attempt_rows.append(
                    {
                        "job_seq": row.seq,
                        "number": number,
                        "idempotency_key": key,
                        "outcome": AttemptOutcome.PENDING.value,
                        "started_at": now,
                    }
                )
            # A rescued attempt keeps its row (and so its key): insert only what is missing.
            _Bulk.of(
                "insert_attempts",
                self.engine.dialect,
                lambda: self._insert(ATTEMPTS).on_conflict_do_nothing(
                    index_elements=["job_seq", "number"]
                ),
                column_keys=list(attempt_rows[0]),
            ).run(conn, attempt_rows)
        return claimed

    def finish(self, finishes: Sequence[Finish]) -> list[bool]:
        if not finishes:
            return []
        fenced = select(JOBS.c.seq).where(
            JOBS.c.seq == bindparam("b_seq"),
            JOBS.c.lease_token == bindparam("b_token"),
            JOBS.c.state == JobState.RUNNING.value,
        )
        attempt_update = (
            update(ATTEMPTS)
            .where(
                ATTEMPTS.c.job_seq == bindparam("b_seq"),
                ATTEMPTS.c.number == bindparam("b_number"),
                fenced.exists(),
            )
            .values(
                outcome=bindparam("b_outcome"),
                finished_at=bindparam("b_finished"),
                error_code=bindparam("b_error"),
                decline_code=bindparam("b_decline"),
                message=bindparam("b_message"),
                reference=bindparam("b_reference"),
                decision=bindparam("b_decision"),
                next_retry_at=bindparam("b_next"),
            )
        )
        job_update = (
            update(JOBS)
            .where(
                JOBS.c.seq == bindparam("b_seq"),
                JOBS.c.lease_token == bindparam("b_token"),
                JOBS.c.state == JobState.RUNNING.value,
            )
            .values(
                state=bindparam("b_state"),
                attempt_count=bindparam("b_number"),
                max_attempts=bindparam("b_max"),
                next_retry_at=bindparam("b_next"),
                reason=bindparam("b_reason"),
                policy_code=bindparam("b_policy"),
                lease_token=None,
                lease_expires_at=None,
                updated_at=bindparam("b_finished"),
                action_ref=bindparam("b_action_ref"),
                action_url=bindparam("b_action_url"),
                action_expires_at=bindparam("b_action_expires"),
            )
        )
        params = []
        for f in finishes:
            check_transition(JobState.RUNNING, f.decision.state)
            params.append(
                {
                    **_action_values(f.result),
                    "b_seq": f.claimed.job.seq,
                    "b_token": f.claimed.lease_token,
                    "b_number": f.claimed.attempt_number,
                    "b_outcome": _attempt_outcome(f.result).value,
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
                }
            )
        with self._tx() as conn:
            applied = self._still_leased(conn, finishes)
            if not all(applied):
                params = [p for p, ok in zip(params, applied, strict=True) if ok]
            if params:
                dialect = self.engine.dialect
                _Bulk.of("finish_attempt", dialect, lambda: attempt_update).run(conn, params)
                _Bulk.of("finish_job", dialect, lambda: job_update).run(conn, params)
        return applied

    def _still_leased(self, conn: Connection, finishes: Sequence[Finish]) -> list[bool]:
        held: set[tuple[int, str]] = set()
        pairs = [(f.claimed.job.seq, f.claimed.lease_token) for f in finishes]
        for start in range(0, len(pairs), _CHUNK):
            chunk = pairs[start : start + _CHUNK]
            rows = conn.execute(
                select(JOBS.c.seq, JOBS.c.lease_token).where(
                    JOBS.c.seq.in_([seq for seq, _ in chunk]),
                    JOBS.c.state == JobState.RUNNING.value,
                )
            )
            held.update((r.seq, r.lease_token) for r in rows)
        return [pair in held for pair in pairs]

    def extend_leases(self, claimed: Sequence[Claimed], until: datetime) -> int:
        if not claimed:
            return 0
        params = [{"b_seq": c.job.seq, "b_token": c.lease_token} for c in claimed]
        with self._tx() as conn:
            result = conn.execute(
                update(JOBS)
                .where(
                    JOBS.c.seq == bindparam("b_seq"),
                    JOBS.c.lease_token == bindparam("b_token"),
                    JOBS.c.state == JobState.RUNNING.value,
                )
                .values(lease_expires_at=until),
                params,
            )
            return int(result.rowcount or 0)

    def release(self, claimed: Sequence[Claimed], now: datetime) -> int:
        """Give back claimed jobs that were never sent: scheduled again, attempt row removed."""
        if not claimed:
            return 0
        params = [
            {"b_seq": c.job.seq, "b_token": c.lease_token, "b_number": c.attempt_number}
            for c in claimed
        ]
        with self._tx() as conn:
            conn.execute(
                ATTEMPTS.delete().where(
                    ATTEMPTS.c.job_seq == bindparam("b_seq"),
                    ATTEMPTS.c.number == bindparam("b_number"),
                    ATTEMPTS.c.outcome == AttemptOutcome.PENDING.value,
                    select(JOBS.c.seq)
                    .where(
                        JOBS.c.seq == bindparam("b_seq"),
                        JOBS.c.lease_token == bindparam("b_token"),
                    )
                    .exists(),
                ),
                params,
            )
            result = conn.execute(
                update(JOBS)
                .where(
                    JOBS.c.seq == bindparam("b_seq"),
                    JOBS.c.lease_token == bindparam("b_token"),
                    JOBS.c.state == JobState.RUNNING.value,
                )
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
        applied = []
        with self._tx() as conn:
            for s in settlements:
                check_transition(JobState.AWAITING_PAYER, s.decision.state)
                job, number = s.job, s.job.attempt_count
                done = conn.execute(
                    update(JOBS)
                    .where(
                        JOBS.c.seq == job.seq,
                        JOBS.c.state == JobState.AWAITING_PAYER.value,
                        JOBS.c.attempt_count == number,
                    )
                    .values(
                        state=s.decision.state.value,
                        max_attempts=s.decision.max_attempts or job.max_attempts,
                        next_retry_at=s.decision.next_retry_at,
                        reason=s.decision.reason,
                        policy_code=s.decision.row.code,
                        action_ref=None,
                        action_url=None,
                        action_expires_at=None,
                        updated_at=s.finished_at,
                    )
                ).rowcount
                if done:
                    conn.execute(
                        update(ATTEMPTS)
                        .where(ATTEMPTS.c.job_seq == job.seq, ATTEMPTS.c.number == number)
                        .values(
                            outcome=_attempt_outcome(s.result).value,
                            finished_at=s.finished_at,
                            error_code=s.result.error_code,
                            decline_code=s.result.decline_code,
                            message=s.result.message,
                            reference=s.result.reference,
                            decision=s.decision.outcome.value,
                            next_retry_at=s.decision.next_retry_at,
                        )
                    )
                applied.append(bool(done))
        return applied

    # -- counting ------------------------------------------------------------------------------

    def stats(self, now: datetime) -> Stats:
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

    def oldest_due(self, now: datetime) -> datetime | None:
        with self._tx(readonly=True) as conn:
            value: datetime | None = conn.execute(
                select(JOBS.c.next_retry_at)
                .where(JOBS.c.state == JobState.SCHEDULED.value, JOBS.c.next_retry_at <= now)
                .order_by(JOBS.c.next_retry_at)
                .limit(1)
            ).scalar()
        return value

    # -- housekeeping --------------------------------------------------------------------------

    def purge(self, before: datetime, *, dry_run: bool = False) -> int:
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
                    return removed
                conn.execute(ATTEMPTS.delete().where(ATTEMPTS.c.job_seq.in_(seqs)))
                conn.execute(JOBS.delete().where(JOBS.c.seq.in_(seqs)))
                removed += len(seqs)

    def beat(self, name: str, kind: str, interval: timedelta, now: datetime) -> None:
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

    def forget_worker(self, name: str) -> None:
        with self._tx() as conn:
            conn.execute(WORKERS.delete().where(WORKERS.c.name == name))

    def workers(self) -> list[WorkerBeat]:
        with self._tx(readonly=True) as conn:
            rows = conn.execute(select(WORKERS).order_by(WORKERS.c.beat_at.desc())).all()
        return [
            WorkerBeat(r.name, r.kind, r.started_at, r.beat_at, timedelta(seconds=r.interval_s))
            for r in rows
        ]


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
