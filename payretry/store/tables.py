"""The tables. Times are stored as UTC and always read back timezone-aware."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator
from sqlmodel import Column, Field, SQLModel

from payretry.domain.models import ACTIVE_STATES

_ACTIVE = ", ".join(f"'{state.value}'" for state in sorted(ACTIVE_STATES))
ACTIVE_PREDICATE = text(f"state IN ({_ACTIVE})")
# SQS dispatch (migration 0004): scheduled jobs with no message for their next attempt, and
# dispatches whose send was never confirmed. Both indexes stay small in sqs mode.
UNDISPATCHED_PREDICATE = text(
    "state = 'scheduled' AND (dispatch_attempt IS NULL OR dispatch_attempt <= attempt_count)"
)
UNSENT_PREDICATE = text("dispatched_at IS NOT NULL AND dispatch_message_id IS NULL")
# Scheduled jobs whose next attempt has a message (migration 0005): the sweep for messages lost
# outside payretry (a purged queue) reads them by due time.
DISPATCHED_PREDICATE = text("state = 'scheduled' AND dispatch_attempt > attempt_count")


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC in, aware UTC out, on every database (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; payretry uses aware UTC")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def bind_processor(self, dialect: Dialect) -> Callable[[datetime | None], Any] | None:
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)
        to_naive_utc = self.process_bind_param

        def process(value: datetime | None) -> str | None:
            # The text SQLite's DATETIME stores ("2026-11-22 12:00:00.000123"), made directly:
            # the same text as the type chain makes, at a third of the cost (run-due binds a
            # fresh time per attempt). A time already in UTC (the clock's) skips the
            # conversion; any other zone, or none (refused), takes the full path.
            if value is not None and value.tzinfo is UTC:
                return value.replace(tzinfo=None).isoformat(" ", "microseconds")
            naive = to_naive_utc(value, dialect)
            return None if naive is None else naive.isoformat(" ", "microseconds")

        return process

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _ts(nullable: bool = True) -> Any:
    return Field(default=None, sa_column=Column(UTCDateTime(), nullable=nullable))


class JobRow(SQLModel, table=True):
    __tablename__ = "retry_jobs"
    __table_args__ = (
        # Claiming walks this index in priority order and stops at the limit.
        Index("ix_retry_jobs_due", "state", text("priority DESC"), "next_retry_at", "seq"),
        # One active job per transaction; finished ones may repeat.
        Index(
            "ux_retry_jobs_active_transaction",
            "transaction_id",
            unique=True,
            sqlite_where=ACTIVE_PREDICATE,
            postgresql_where=ACTIVE_PREDICATE,
        ),
        Index("ix_retry_jobs_transaction", "transaction_id", "seq"),
        Index("ix_retry_jobs_lease", "state", "lease_expires_at"),
        Index("ix_retry_jobs_expiry", "state", "expires_at"),
        Index("ix_retry_jobs_user", "user_id", "seq"),
        Index(
            "ix_retry_jobs_undispatched",
            "state",
            "next_retry_at",
            sqlite_where=UNDISPATCHED_PREDICATE,
            postgresql_where=UNDISPATCHED_PREDICATE,
        ),
        Index(
            "ix_retry_jobs_unsent",
            "dispatched_at",
            sqlite_where=UNSENT_PREDICATE,
            postgresql_where=UNSENT_PREDICATE,
        ),
        Index(
            "ix_retry_jobs_dispatched",
            "next_retry_at",
            sqlite_where=DISPATCHED_PREDICATE,
            postgresql_where=DISPATCHED_PREDICATE,
        ),
    )

    seq: int | None = Field(default=None, sa_column=Column(Integer, primary_key=True))
    id: str = Field(sa_column=Column(String(32), nullable=False, unique=True))
    transaction_id: str = Field(sa_column=Column(String(255), nullable=False))
    user_id: str = Field(sa_column=Column(String(255), nullable=False))
    amount_minor: int = Field(sa_column=Column(BigInteger, nullable=False))
    currency: str = Field(sa_column=Column(String(3), nullable=False))
    error_code: str = Field(sa_column=Column(String(64), nullable=False))
    decline_code: str | None = Field(default=None, sa_column=Column(String(64)))
    error_message: str | None = Field(default=None, sa_column=Column(String(500)))
    state: str = Field(sa_column=Column(String(16), nullable=False))
    attempt_count: int = Field(default=0, sa_column=Column(Integer, nullable=False))
    max_attempts: int = Field(sa_column=Column(Integer, nullable=False))
    next_retry_at: datetime | None = _ts()
    created_at: datetime = _ts(nullable=False)
    updated_at: datetime = _ts(nullable=False)
    expires_at: datetime | None = _ts()
    priority: int = Field(sa_column=Column(BigInteger, nullable=False))
    payment_intent: str | None = Field(default=None, sa_column=Column(String(255)))
    customer: str | None = Field(default=None, sa_column=Column(String(255)))
    payment_method: str | None = Field(default=None, sa_column=Column(String(255)))
    checkout_session: str | None = Field(default=None, sa_column=Column(String(255)))
    meta: dict[str, str] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    reason: str | None = Field(default=None, sa_column=Column(String(1000)))
    policy_code: str | None = Field(default=None, sa_column=Column(String(64)))
    lease_token: str | None = Field(default=None, sa_column=Column(String(32)))
    lease_expires_at: datetime | None = _ts()
    # Times the current attempt was rescued without an outcome (migration 0005); at
    # `[runner] max_rescues` the next lapse parks the job.
    rescues: int = Field(
        default=0, sa_column=Column(Integer, nullable=False, server_default=text("0"))
    )
    # While awaiting_payer: the Checkout Session the customer must complete (migration 0002).
    action_ref: str | None = Field(default=None, sa_column=Column(String(255)))
    action_url: str | None = Field(default=None, sa_column=Column(String(2048)))
    action_expires_at: datetime | None = _ts()
    # SQS dispatch (migration 0004): the attempt whose message was last committed to be sent,
    # when, and the queue's message id once the send is confirmed.
    dispatch_attempt: int | None = Field(default=None, sa_column=Column(Integer))
    dispatched_at: datetime | None = _ts()
    dispatch_message_id: str | None = Field(default=None, sa_column=Column(String(128)))
    # The card (migration 0007): its network and the processor's fingerprint, when known, and
    # the card-network rule that last moved or stopped the job.
    card_network: str | None = Field(default=None, sa_column=Column(String(16)))
    card_fingerprint: str | None = Field(default=None, sa_column=Column(String(64)))
    network_rule: str | None = Field(default=None, sa_column=Column(String(64)))


class AttemptRow(SQLModel, table=True):
    __tablename__ = "retry_attempts"
    __table_args__ = (Index("ux_retry_attempts_job_number", "job_seq", "number", unique=True),)

    id: int | None = Field(default=None, sa_column=Column(Integer, primary_key=True))
    job_seq: int = Field(
        sa_column=Column(Integer, ForeignKey("retry_jobs.seq", ondelete="CASCADE"), nullable=False)
    )
    number: int = Field(sa_column=Column(Integer, nullable=False))
    idempotency_key: str = Field(sa_column=Column(String(128), nullable=False, unique=True))
    outcome: str = Field(sa_column=Column(String(16), nullable=False))
    started_at: datetime = _ts(nullable=False)
    finished_at: datetime | None = _ts()
    error_code: str | None = Field(default=None, sa_column=Column(String(64)))
    decline_code: str | None = Field(default=None, sa_column=Column(String(64)))
    message: str | None = Field(default=None, sa_column=Column(String(500)))
    reference: str | None = Field(default=None, sa_column=Column(String(255)))
    decision: str | None = Field(default=None, sa_column=Column(String(16)))
    next_retry_at: datetime | None = _ts()


class WorkerRow(SQLModel, table=True):
    """One row per running `serve` process: its heartbeat, read by `payretry health`."""

    __tablename__ = "payretry_workers"

    name: str = Field(sa_column=Column(String(255), primary_key=True))
    kind: str = Field(sa_column=Column(String(16), nullable=False))
    started_at: datetime = _ts(nullable=False)
    beat_at: datetime = _ts(nullable=False)
    interval_s: float = Field(sa_column=Column(Float, nullable=False))


class OutboxRow(SQLModel, table=True):
    """The event outbox (migration 0003): one entry per state change, written in the same
    transaction as the change; its events are rendered from it (domain/events.py). `seq`
    orders entries; on PostgreSQL `txid` is the writing transaction's id, so delivery can wait
    for transactions still in flight (store/outbox.py). On SQLite `txid` is 0 and the order
    index stays empty; AUTOINCREMENT keeps a purged `seq` from being handed out again."""

    __tablename__ = "retry_outbox"
    __table_args__ = (
        Index("ix_retry_outbox_order", "txid", "seq", sqlite_where=text("txid <> 0")),
        Index("ix_retry_outbox_job", "job_id", "seq"),
        {"sqlite_autoincrement": True},
    )

    seq: int | None = Field(
        default=None,
        sa_column=Column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    )
    txid: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    job_id: str = Field(sa_column=Column(String(32), nullable=False))
    attempt: int = Field(sa_column=Column(Integer, nullable=False))
    kind: str = Field(sa_column=Column(String(32), nullable=False))
    occurred_at: datetime = _ts(nullable=False)
    data: str = Field(sa_column=Column(Text, nullable=False))  # JSON, compact


class OutboxSinkRow(SQLModel, table=True):
    """Per sink: how far delivery has come (the (txid, seq) of the last entry delivered), who
    is delivering (a lease, like a job's), and its failures and next try."""

    __tablename__ = "retry_outbox_sinks"

    name: str = Field(sa_column=Column(String(64), primary_key=True))
    cursor_txid: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    cursor_seq: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    delivered: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    failures: int = Field(default=0, sa_column=Column(Integer, nullable=False))
    last_error: str | None = Field(default=None, sa_column=Column(String(500)))
    retry_at: datetime | None = _ts()
    lease_token: str | None = Field(default=None, sa_column=Column(String(32)))
    lease_expires_at: datetime | None = _ts()
    updated_at: datetime = _ts(nullable=False)


class CardLedgerRow(SQLModel, table=True):
    """The card ledger (migration 0007): one row per authorization payretry sent on a card, and
    per decline a job was queued after (attempt 0), whichever job it belongs to, under the key
    it was written with (store/cards.py). Written in the transaction of the change that makes
    it; kept for its own retention, apart from the jobs' (`purge` of jobs leaves it). No
    foreign key: a purged job's entries still count. One index: each entry costs one."""

    __tablename__ = "card_ledger"
    __table_args__ = (Index("ix_card_ledger_card", "card_key", "at"),)

    id: int | None = Field(
        default=None,
        sa_column=Column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    )
    card_key: str = Field(sa_column=Column(String(300), nullable=False))
    at: datetime = _ts(nullable=False)  # when it was sent (or queued): indexed, never changed
    settled_at: datetime | None = _ts()  # when its outcome came back: a decline's own time
    network: str = Field(sa_column=Column(String(16), nullable=False))
    kind: str = Field(sa_column=Column(String(16), nullable=False))
    initiated_by: str = Field(sa_column=Column(String(16), nullable=False))
    network_advice_code: str | None = Field(default=None, sa_column=Column(String(8)))
    network_decline_code: str | None = Field(default=None, sa_column=Column(String(8)))
    job_id: str = Field(sa_column=Column(String(32), nullable=False))
    attempt_number: int = Field(sa_column=Column(Integer, nullable=False))


class CardLinkRow(SQLModel, table=True):
    """A payment method whose card is known (migration 0007): its entries count with the
    card's, and with every other payment method of that card."""

    __tablename__ = "card_links"
    __table_args__ = (Index("ix_card_links_card", "card_key"),)

    method_key: str = Field(sa_column=Column(String(300), primary_key=True))
    card_key: str = Field(sa_column=Column(String(300), nullable=False))


# -- the HTTP API (migration 0005) --------------------------------------------------------------


class ApiTokenRow(SQLModel, table=True):
    """A bearer token of the HTTP API: its public id, a keyed SHA-256 of the whole token (never
    the token), its role, and for a customer token its one transaction and expiry."""

    __tablename__ = "api_tokens"

    id: str = Field(sa_column=Column(String(32), primary_key=True))
    name: str = Field(sa_column=Column(String(100), nullable=False))
    role: str = Field(sa_column=Column(String(16), nullable=False))
    secret_hash: str = Field(sa_column=Column(String(128), nullable=False))
    transaction_id: str | None = Field(default=None, sa_column=Column(String(255)))
    created_at: datetime = _ts(nullable=False)
    expires_at: datetime | None = _ts()
    revoked_at: datetime | None = _ts()


class IdempotencyRow(SQLModel, table=True):
    """An Idempotency-Key of one client (`scope`, its token id): claimed in its own transaction
    before the request runs (`token` fences the completion), then the stored response."""

    __tablename__ = "api_idempotency"
    __table_args__ = (Index("ix_api_idempotency_created", "created_at"),)

    scope: str = Field(sa_column=Column(String(64), primary_key=True))
    key: str = Field(sa_column=Column(String(255), primary_key=True))
    fingerprint: str = Field(sa_column=Column(String(64), nullable=False))
    token: str = Field(sa_column=Column(String(32), nullable=False))
    status: int | None = Field(default=None, sa_column=Column(Integer))
    body: str | None = Field(default=None, sa_column=Column(Text))
    content_type: str | None = Field(default=None, sa_column=Column(String(100)))
    created_at: datetime = _ts(nullable=False)
    lease_expires_at: datetime | None = _ts()
    completed_at: datetime | None = _ts()


class ThrottleRow(SQLModel, table=True):
    """One counter of the retry-request throttle: requests in the window that began at
    `window_start`."""

    __tablename__ = "api_throttle"

    bucket: str = Field(sa_column=Column(String(300), primary_key=True))
    window_start: datetime = _ts(nullable=False)
    count: int = Field(sa_column=Column(Integer, nullable=False))


class FirstAttemptRow(SQLModel, table=True):
    """The first attempt of a payment sent through `POST /api/payments/process`, written before
    the processor is called: one per transaction, holding the job id its key is made from."""

    __tablename__ = "api_first_attempts"

    transaction_id: str = Field(sa_column=Column(String(255), primary_key=True))
    job_id: str = Field(sa_column=Column(String(32), nullable=False))
    idempotency_key: str = Field(sa_column=Column(String(128), nullable=False))
    request: str = Field(sa_column=Column(Text, nullable=False))  # JSON
    started_at: datetime = _ts(nullable=False)
    lease_expires_at: datetime | None = _ts()
    outcome: str | None = Field(default=None, sa_column=Column(String(16)))
    result: str | None = Field(default=None, sa_column=Column(Text))  # JSON
    finished_at: datetime | None = _ts()
    queued: bool = Field(default=False, sa_column=Column(Boolean, nullable=False))


class RollupRow(SQLModel, table=True):
    """Daily rollups (migration 0007): counts added as attempts and jobs end, in the same
    transaction as the change (domain/rollups.py says which). Never purged."""

    __tablename__ = "retry_rollups"

    day: date = Field(sa_column=Column(Date, primary_key=True))
    metric: str = Field(sa_column=Column(String(16), primary_key=True))
    key: str = Field(sa_column=Column(String(200), primary_key=True))
    currency: str = Field(sa_column=Column(String(3), primary_key=True))
    count: int = Field(sa_column=Column(BigInteger, nullable=False))
    amount_minor: int = Field(sa_column=Column(BigInteger, nullable=False))
    seconds: float = Field(sa_column=Column(Float, nullable=False))


JOBS = JobRow.__table__  # type: ignore[attr-defined]
ATTEMPTS = AttemptRow.__table__  # type: ignore[attr-defined]
WORKERS = WorkerRow.__table__  # type: ignore[attr-defined]
OUTBOX = OutboxRow.__table__  # type: ignore[attr-defined]
OUTBOX_SINKS = OutboxSinkRow.__table__  # type: ignore[attr-defined]
CARD_LEDGER = CardLedgerRow.__table__  # type: ignore[attr-defined]
CARD_LINKS = CardLinkRow.__table__  # type: ignore[attr-defined]
API_TOKENS = ApiTokenRow.__table__  # type: ignore[attr-defined]
IDEMPOTENCY = IdempotencyRow.__table__  # type: ignore[attr-defined]
THROTTLE = ThrottleRow.__table__  # type: ignore[attr-defined]
FIRST_ATTEMPTS = FirstAttemptRow.__table__  # type: ignore[attr-defined]
ROLLUPS = RollupRow.__table__  # type: ignore[attr-defined]
