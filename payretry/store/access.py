"""The HTTP API's tokens and the retry-request throttle's counters, in SQL. Both sit beside the
jobs in the same database (one transaction each), so every API replica on one PostgreSQL
database sees the same tokens and the same counts."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update

from payretry.domain.access import ApiToken, Role
from payretry.domain.requests import Limit, Verdict
from payretry.store.engine import dialect_insert
from payretry.store.sql import SqlStore
from payretry.store.tables import API_TOKENS, THROTTLE


def _token(row: Any) -> ApiToken:
    r = row._mapping
    return ApiToken(
        id=r["id"],
        name=r["name"],
        role=Role(r["role"]),
        secret_hash=r["secret_hash"],
        created_at=r["created_at"],
        expires_at=r["expires_at"],
        revoked_at=r["revoked_at"],
        transaction_id=r["transaction_id"],
    )


class SqlTokens:
    """The TokenStore port."""

    def __init__(self, store: SqlStore) -> None:
        self.store = store

    def add_token(self, token: ApiToken) -> None:
        with self.store._tx() as conn:
            conn.execute(
                API_TOKENS.insert().values(
                    id=token.id,
                    name=token.name,
                    role=token.role.value,
                    secret_hash=token.secret_hash,
                    transaction_id=token.transaction_id,
                    created_at=token.created_at,
                    expires_at=token.expires_at,
                    revoked_at=token.revoked_at,
                )
            )

    def token(self, token_id: str) -> ApiToken | None:
        with self.store._tx(readonly=True) as conn:
            row = conn.execute(select(API_TOKENS).where(API_TOKENS.c.id == token_id)).first()
        return _token(row) if row is not None else None

    def tokens(self) -> Sequence[ApiToken]:
        with self.store._tx(readonly=True) as conn:
            rows = conn.execute(
                select(API_TOKENS).order_by(API_TOKENS.c.created_at.desc(), API_TOKENS.c.id)
            ).all()
        return [_token(r) for r in rows]

    def revoke_token(self, token_id: str, now: datetime) -> ApiToken | None:
        with self.store._tx() as conn:
            conn.execute(
                update(API_TOKENS)
                .where(API_TOKENS.c.id == token_id, API_TOKENS.c.revoked_at.is_(None))
                .values(revoked_at=now)
            )
            row = conn.execute(select(API_TOKENS).where(API_TOKENS.c.id == token_id)).first()
        return _token(row) if row is not None else None


class SqlThrottle:
    """The ThrottleStore port: a fixed window per bucket that starts with its first request.

    One short transaction takes every bucket of a request: each row is created if missing, then
    locked (FOR UPDATE on PostgreSQL, in bucket order so two requests never wait on each other
    crosswise; SQLite's BEGIN IMMEDIATE serialises writers anyway), every limit is tested, and
    all are counted or none. Two replicas cannot both let the last allowed request through.
    """

    def __init__(self, store: SqlStore) -> None:
        self.store = store
        self._insert = dialect_insert(store.dialect)

    def take(self, limits: Sequence[Limit], now: datetime) -> Verdict:
        if not limits:
            return Verdict(True)
        ordered = sorted(limits, key=lambda limit: limit.bucket)
        buckets = [limit.bucket for limit in ordered]
        with self.store._tx() as conn:
            conn.execute(
                self._insert(THROTTLE).on_conflict_do_nothing(index_elements=["bucket"]),
                [{"bucket": b, "window_start": now, "count": 0} for b in buckets],
            )
            query = select(THROTTLE).where(THROTTLE.c.bucket.in_(buckets))
            if self.store.dialect == "postgresql":
                query = query.order_by(THROTTLE.c.bucket).with_for_update()
            rows = {r.bucket: r._mapping for r in conn.execute(query)}
            counts: list[tuple[str, datetime, int]] = []
            for limit in ordered:
                row = rows[limit.bucket]
                start, count = row["window_start"], int(row["count"])
                if now >= start + limit.window:
                    start, count = now, 0  # a new window
                # A `now` before the window's start (a request timed a moment before another
                # that committed first, or a clock that went back) counts in the current
                # window: resetting it there would let concurrent requests through.
                if count >= limit.count:
                    return Verdict(
                        False, max(start + limit.window - now, timedelta(0)), limit.bucket
                    )
                counts.append((limit.bucket, start, count + 1))
            for bucket, start, count in counts:
                conn.execute(
                    update(THROTTLE)
                    .where(THROTTLE.c.bucket == bucket)
                    .values(window_start=start, count=count)
                )
        return Verdict(True)

    def peek(self, limits: Sequence[Limit], now: datetime) -> Verdict:
        if not limits:
            return Verdict(True)
        by_bucket = {limit.bucket: limit for limit in limits}
        with self.store._tx(readonly=True) as conn:
            rows = conn.execute(select(THROTTLE).where(THROTTLE.c.bucket.in_(list(by_bucket))))
            for row in sorted((r._mapping for r in rows), key=lambda r: str(r["bucket"])):
                limit = by_bucket[row["bucket"]]
                ends = row["window_start"] + limit.window
                if now < ends and int(row["count"]) >= limit.count:
                    return Verdict(False, ends - now, limit.bucket)
        return Verdict(True)
