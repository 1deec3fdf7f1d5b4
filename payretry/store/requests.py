"""Stored responses of idempotency keys, first attempts of processed payments, and the reads
the HTTP API needs (a user's jobs by page, a job by Checkout Session, a ping), in SQL."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, text, update

from payretry.domain.models import ACTIVE_STATES, Job
from payretry.domain.requests import (
    ClaimState,
    FirstAttempt,
    JobPage,
    KeyClaim,
    StoredResponse,
)
from payretry.errors import InvalidInput
from payretry.store.sql import SqlStore
from payretry.store.tables import FIRST_ATTEMPTS, IDEMPOTENCY, JOBS

_ACTIVE = [state.value for state in ACTIVE_STATES]


class SqlIdempotency:
    """The IdempotencyStore port. A key is claimed by inserting its row in a transaction of its
    own, committed before the request runs: of two requests with one key, on one replica or on
    two, exactly one inserts it; the other finds it (running: 409, done: the stored answer)."""

    def __init__(self, store: SqlStore) -> None:
        self.store = store
        self._insert = store._insert

    def claim_key(
        self,
        scope: str,
        key: str,
        fingerprint: str,
        now: datetime,
        *,
        keep_for: timedelta,
        lease_for: timedelta,
    ) -> KeyClaim:
        token = uuid.uuid4().hex
        fresh = {
            "fingerprint": fingerprint,
            "token": token,
            "status": None,
            "body": None,
            "content_type": None,
            "created_at": now,
            "lease_expires_at": now + lease_for,
            "completed_at": None,
        }
        at = (IDEMPOTENCY.c.scope == scope, IDEMPOTENCY.c.key == key)
        with self.store._tx() as conn:
            inserted = conn.execute(  # RETURNING: rowcount is not reliable for ON CONFLICT
                self._insert(IDEMPOTENCY)
                .values(scope=scope, key=key, **fresh)
                .on_conflict_do_nothing(index_elements=["scope", "key"])
                .returning(IDEMPOTENCY.c.key)
            ).first()
            if inserted is not None:
                return KeyClaim(ClaimState.CLAIMED, token)
            query = select(IDEMPOTENCY).where(*at)
            if self.store.dialect == "postgresql":
                query = query.with_for_update()
            row = conn.execute(query).one()
            if row.created_at + keep_for <= now:  # expired: the key is free again
                conn.execute(update(IDEMPOTENCY).where(*at).values(**fresh))
                return KeyClaim(ClaimState.CLAIMED, token)
            if row.fingerprint != fingerprint:
                return KeyClaim(ClaimState.MISMATCH)
            if row.status is not None:
                body = (row.body or "").encode()
                stored = StoredResponse(row.status, body, row.content_type or "application/json")
                return KeyClaim(ClaimState.REPLAY, response=stored)
            if row.lease_expires_at is not None and row.lease_expires_at <= now:
                # The request that claimed it died without an answer: ours now.
                conn.execute(
                    update(IDEMPOTENCY)
                    .where(*at, IDEMPOTENCY.c.token == row.token)
                    .values(token=token, lease_expires_at=now + lease_for)
                )
                return KeyClaim(ClaimState.CLAIMED, token)
            return KeyClaim(ClaimState.RUNNING)

    def complete_key(
        self, scope: str, key: str, token: str, response: StoredResponse, now: datetime
    ) -> bool:
        with self.store._tx() as conn:
            done = conn.execute(
                update(IDEMPOTENCY)
                .where(
                    IDEMPOTENCY.c.scope == scope,
                    IDEMPOTENCY.c.key == key,
                    IDEMPOTENCY.c.token == token,
                )
                .values(
                    status=response.status,
                    body=response.body.decode(),
                    content_type=response.content_type,
                    completed_at=now,
                    lease_expires_at=None,
                )
            ).rowcount
        return bool(done)

    def release_key(self, scope: str, key: str, token: str) -> None:
        with self.store._tx() as conn:
            conn.execute(
                IDEMPOTENCY.delete().where(
                    IDEMPOTENCY.c.scope == scope,
                    IDEMPOTENCY.c.key == key,
                    IDEMPOTENCY.c.token == token,
                    IDEMPOTENCY.c.status.is_(None),
                )
            )

    def purge_keys(self, before: datetime) -> int:
        with self.store._tx() as conn:
            removed = conn.execute(
                IDEMPOTENCY.delete().where(IDEMPOTENCY.c.created_at < before)
            ).rowcount
        return int(removed or 0)


def _first(row: Any) -> FirstAttempt:
    r = row._mapping
    return FirstAttempt(
        transaction_id=r["transaction_id"],
        job_id=r["job_id"],
        idempotency_key=r["idempotency_key"],
        request=json.loads(r["request"]),
        started_at=r["started_at"],
        lease_expires_at=r["lease_expires_at"],
        outcome=r["outcome"],
        result=json.loads(r["result"]) if r["result"] else None,
        finished_at=r["finished_at"],
        queued=bool(r["queued"]),
    )


class SqlFirstAttempts:
    """The FirstAttemptStore port: one row per transaction, written (and committed) before the
    processor is called."""

    def __init__(self, store: SqlStore) -> None:
        self.store = store
        self._insert = store._insert

    def start_first(self, attempt: FirstAttempt, lease_for: timedelta) -> FirstAttempt | None:
        with self.store._tx() as conn:
            inserted = conn.execute(
                self._insert(FIRST_ATTEMPTS)
                .values(
                    transaction_id=attempt.transaction_id,
                    job_id=attempt.job_id,
                    idempotency_key=attempt.idempotency_key,
                    request=json.dumps(attempt.request, sort_keys=True),
                    started_at=attempt.started_at,
                    lease_expires_at=attempt.started_at + lease_for,
                    queued=False,
                )
                .on_conflict_do_nothing(index_elements=["transaction_id"])
                .returning(FIRST_ATTEMPTS.c.transaction_id)
            ).first()
        return attempt if inserted is not None else None

    def first_attempt(self, transaction_id: str) -> FirstAttempt | None:
        with self.store._tx(readonly=True) as conn:
            row = conn.execute(
                select(FIRST_ATTEMPTS).where(FIRST_ATTEMPTS.c.transaction_id == transaction_id)
            ).first()
        return _first(row) if row is not None else None

    def lease_first(
        self, transaction_id: str, now: datetime, lease_for: timedelta
    ) -> FirstAttempt | None:
        with self.store._tx() as conn:
            row = conn.execute(
                update(FIRST_ATTEMPTS)
                .where(
                    FIRST_ATTEMPTS.c.transaction_id == transaction_id,
                    FIRST_ATTEMPTS.c.outcome.is_(None),
                    or_(
                        FIRST_ATTEMPTS.c.lease_expires_at.is_(None),
                        FIRST_ATTEMPTS.c.lease_expires_at <= now,
                    ),
                )
                .values(lease_expires_at=now + lease_for)
                .returning(*FIRST_ATTEMPTS.c)
            ).first()
        return _first(row) if row is not None else None

    def unlease_first(self, transaction_id: str) -> None:
        with self.store._tx() as conn:
            conn.execute(
                update(FIRST_ATTEMPTS)
                .where(
                    FIRST_ATTEMPTS.c.transaction_id == transaction_id,
                    FIRST_ATTEMPTS.c.outcome.is_(None),
                )
                .values(lease_expires_at=None)
            )

    def finish_first(self, attempt: FirstAttempt) -> None:
        with self.store._tx() as conn:
            conn.execute(
                update(FIRST_ATTEMPTS)
                .where(
                    FIRST_ATTEMPTS.c.transaction_id == attempt.transaction_id,
                    FIRST_ATTEMPTS.c.outcome.is_(None),
                )
                .values(
                    outcome=attempt.outcome,
                    result=json.dumps(attempt.result, sort_keys=True),
                    finished_at=attempt.finished_at,
                    lease_expires_at=None,
                )
            )

    def mark_queued(self, transaction_id: str) -> None:
        with self.store._tx() as conn:
            conn.execute(
                update(FIRST_ATTEMPTS)
                .where(FIRST_ATTEMPTS.c.transaction_id == transaction_id)
                .values(queued=True)
            )


class SqlLookups:
    """The JobLookups port."""

    def __init__(self, store: SqlStore) -> None:
        self.store = store

    def jobs_for_user(self, user_id: str, *, after: str | None, limit: int) -> JobPage:
        if limit < 1:  # a page of none has no last job to continue after
            raise InvalidInput("must be at least 1", field="limit")
        query = select(JOBS).where(JOBS.c.user_id == user_id)
        if after is not None:
            if not (after.isascii() and after.isdigit()) or len(after) > 18:
                raise InvalidInput("is not a cursor from an earlier page", field="cursor")
            query = query.where(JOBS.c.seq < int(after))
        with self.store._tx(readonly=True) as conn:
            rows = conn.execute(query.order_by(JOBS.c.seq.desc()).limit(limit + 1)).all()
            jobs = self.store._jobs(conn, rows[:limit], True)
        more = len(rows) > limit
        return JobPage(jobs, str(rows[limit - 1].seq) if more else None)

    def find_by_session(self, session_id: str) -> Job | None:
        with self.store._tx(readonly=True) as conn:
            row = conn.execute(
                select(JOBS)
                .where(or_(JOBS.c.checkout_session == session_id, JOBS.c.action_ref == session_id))
                .order_by(JOBS.c.state.in_(_ACTIVE).desc(), JOBS.c.seq.desc())
                .limit(1)
            ).first()
            jobs = self.store._jobs(conn, [row], True) if row is not None else []
        return jobs[0] if jobs else None

    def ping(self) -> None:
        with self.store._tx(readonly=True) as conn:
            conn.execute(text("SELECT 1"))
