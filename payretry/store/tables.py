"""The tables, as SQLAlchemy Core `Table`s on one `METADATA` (what the store's statements and
the migrations are checked against). Times are stored as UTC and always read back
timezone-aware."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.elements import TextClause
from sqlalchemy.types import TypeDecorator

from payretry.store.schema import ACTIVE_SQL

METADATA = MetaData()

ACTIVE_PREDICATE = text(ACTIVE_SQL)
# SQS dispatch (migration 0004): scheduled jobs with no message for their next attempt, and
# dispatches whose send was never confirmed. Both indexes stay small in sqs mode.
UNDISPATCHED_PREDICATE = text(
    "state = 'scheduled' AND (dispatch_attempt IS NULL OR dispatch_attempt <= attempt_count)"
)
UNSENT_PREDICATE = text("dispatched_at IS NOT NULL AND dispatch_message_id IS NULL")
# Scheduled jobs whose next attempt has a message (migration 0005): the sweep for messages lost
# outside payretry (a purged queue) reads them by due time.
DISPATCHED_PREDICATE = text("state = 'scheduled' AND dispatch_attempt > attempt_count")

# The partial indexes, with the predicate each has on both databases. SQLAlchemy checks a
# `postgresql_where=` argument against its PostgreSQL dialect, importing that (some 25 to
# 40 ms) wherever these tables are defined, SQLite included; so the PostgreSQL side is given
# by use_postgresql(), which make_engine calls when it opens PostgreSQL.
_PARTIAL_INDEXES: list[tuple[Index, TextClause]] = []


def _partial(name: str, *columns: str, where: TextClause, unique: bool = False) -> Index:
    index = Index(name, *columns, unique=unique, sqlite_where=where)
    _PARTIAL_INDEXES.append((index, where))
    return index


def use_postgresql() -> None:
    """Give the partial indexes their PostgreSQL predicate (what Alembic compares the
    migrations' indexes against). Idempotent; imports the PostgreSQL dialect."""
    for index, where in _PARTIAL_INDEXES:
        index.dialect_options["postgresql"]["where"] = where


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


JOBS = Table(
    "retry_jobs",
    METADATA,
    Column("seq", Integer, primary_key=True),
    Column("id", String(32), nullable=False, unique=True),
    Column("transaction_id", String(255), nullable=False),
    Column("user_id", String(255), nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("error_code", String(64), nullable=False),
    Column("decline_code", String(64)),
    Column("error_message", String(500)),
    Column("state", String(16), nullable=False),
    Column("attempt_count", Integer, nullable=False),
    Column("max_attempts", Integer, nullable=False),
    Column("next_retry_at", UTCDateTime()),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("expires_at", UTCDateTime()),
    Column("priority", BigInteger, nullable=False),
    Column("payment_intent", String(255)),
    Column("customer", String(255)),
    Column("payment_method", String(255)),
    Column("checkout_session", String(255)),
    Column("meta", JSON, nullable=False),
    Column("reason", String(1000)),
    Column("policy_code", String(64)),
    Column("lease_token", String(32)),
    Column("lease_expires_at", UTCDateTime()),
    # Times the current attempt was rescued without an outcome (migration 0005); at
    # `[runner] max_rescues` the next lapse parks the job.
    Column("rescues", Integer, nullable=False, server_default=text("0")),
    # While awaiting_payer: the Checkout Session the customer must complete (migration 0002).
    Column("action_ref", String(255)),
    Column("action_url", String(2048)),
    Column("action_expires_at", UTCDateTime()),
    # SQS dispatch (migration 0004): the attempt whose message was last committed to be sent,
    # when, and the queue's message id once the send is confirmed.
    Column("dispatch_attempt", Integer),
    Column("dispatched_at", UTCDateTime()),
    Column("dispatch_message_id", String(128)),
    # The card (migration 0007): its network and the processor's fingerprint, when known, and
    # the card-network rule that last moved or stopped the job.
    Column("card_network", String(16)),
    Column("card_fingerprint", String(64)),
    Column("network_rule", String(64)),
    # Revived with new card data after this many attempts (migration 0009); None: never.
    Column("revived_after", Integer),
    # Claiming walks this index in priority order and stops at the limit.
    Index("ix_retry_jobs_due", "state", text("priority DESC"), "next_retry_at", "seq"),
    # One active job per transaction; finished ones may repeat.
    _partial(
        "ux_retry_jobs_active_transaction",
        "transaction_id",
        unique=True,
        where=ACTIVE_PREDICATE,
    ),
    Index("ix_retry_jobs_transaction", "transaction_id", "seq"),
    Index("ix_retry_jobs_lease", "state", "lease_expires_at"),
    Index("ix_retry_jobs_expiry", "state", "expires_at"),
    Index("ix_retry_jobs_user", "user_id", "seq"),
    _partial(
        "ix_retry_jobs_undispatched",
        "state",
        "next_retry_at",
        where=UNDISPATCHED_PREDICATE,
    ),
    _partial(
        "ix_retry_jobs_unsent",
        "dispatched_at",
        where=UNSENT_PREDICATE,
    ),
    _partial(
        "ix_retry_jobs_dispatched",
        "next_retry_at",
        where=DISPATCHED_PREDICATE,
    ),
    # Stripe webhooks (migration 0009): the jobs of a payment, of a customer, of a session.
    Index("ix_retry_jobs_payment_intent", "payment_intent"),
    Index("ix_retry_jobs_customer", "customer", "seq"),
    Index("ix_retry_jobs_action", "action_ref"),
    # `stats` (migration 0011): the oldest active job and the pending amounts, read from the
    # active jobs alone (store/reports.py).
    _partial(
        "ix_retry_jobs_active_stats",
        "seq",
        "state",
        "currency",
        "amount_minor",
        where=ACTIVE_PREDICATE,
    ),
)


ATTEMPTS = Table(
    "retry_attempts",
    METADATA,
    Column("id", Integer, primary_key=True),
    Column("job_seq", Integer, ForeignKey("retry_jobs.seq", ondelete="CASCADE"), nullable=False),
    Column("number", Integer, nullable=False),
    Column("idempotency_key", String(128), nullable=False, unique=True),
    Column("outcome", String(16), nullable=False),
    Column("started_at", UTCDateTime(), nullable=False),
    Column("finished_at", UTCDateTime()),
    Column("error_code", String(64)),
    Column("decline_code", String(64)),
    Column("message", String(500)),
    Column("reference", String(255)),
    Column("decision", String(16)),
    Column("next_retry_at", UTCDateTime()),
    Index("ux_retry_attempts_job_number", "job_seq", "number", unique=True),
)


# One row per running `serve` process: its heartbeat, read by `payretry health`.
WORKERS = Table(
    "payretry_workers",
    METADATA,
    Column("name", String(255), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("started_at", UTCDateTime(), nullable=False),
    Column("beat_at", UTCDateTime(), nullable=False),
    Column("interval_s", Float, nullable=False),
)


# The event outbox (migration 0003): one entry per state change, written in the same transaction
# as the change; its events are rendered from it (domain/events.py). `seq` orders entries; on
# PostgreSQL `txid` is the writing transaction's id, so delivery can wait for transactions still
# in flight (store/outbox.py). On SQLite `txid` is 0 and the order index stays empty;
# AUTOINCREMENT keeps a purged `seq` from being handed out again.
OUTBOX = Table(
    "retry_outbox",
    METADATA,
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("txid", BigInteger, nullable=False),
    Column("job_id", String(32), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("occurred_at", UTCDateTime(), nullable=False),
    Column("data", Text, nullable=False),  # JSON, compact
    Index("ix_retry_outbox_order", "txid", "seq", sqlite_where=text("txid <> 0")),
    Index("ix_retry_outbox_job", "job_id", "seq"),
    # The narrowest, for counting the entries (`stats`; migration 0011).
    Index("ix_retry_outbox_count", "txid"),
    sqlite_autoincrement=True,
)


# Per sink: how far delivery has come (the (txid, seq) of the last entry delivered), who is
# delivering (a lease, like a job's), and its failures and next try.
OUTBOX_SINKS = Table(
    "retry_outbox_sinks",
    METADATA,
    Column("name", String(64), primary_key=True),
    Column("cursor_txid", BigInteger, nullable=False),
    Column("cursor_seq", BigInteger, nullable=False),
    Column("delivered", BigInteger, nullable=False),
    Column("failures", Integer, nullable=False),
    Column("last_error", String(500)),
    Column("retry_at", UTCDateTime()),
    Column("lease_token", String(32)),
    Column("lease_expires_at", UTCDateTime()),
    Column("updated_at", UTCDateTime(), nullable=False),
)


# The card ledger (migration 0007): one row per authorization payretry sent on a card, and per
# decline a job was queued after (attempt 0), whichever job it belongs to, under the key it was
# written with (store/cards.py). Written in the transaction of the change that makes it; kept
# for its own retention, apart from the jobs' (`purge` of jobs leaves it). No foreign key: a
# purged job's entries still count. One index: each entry costs one.
CARD_LEDGER = Table(
    "card_ledger",
    METADATA,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("card_key", String(300), nullable=False),
    Column("at", UTCDateTime(), nullable=False),
    Column("settled_at", UTCDateTime()),  # when its outcome came back: a decline's own time
    Column("network", String(16), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("initiated_by", String(16), nullable=False),
    Column("network_advice_code", String(8)),
    Column("network_decline_code", String(8)),
    Column("job_id", String(32), nullable=False),
    Column("attempt_number", Integer, nullable=False),
    Index("ix_card_ledger_card", "card_key", "at"),
)


# A payment method whose card is known (migration 0007): its entries count with the card's, and
# with every other payment method of that card.
CARD_LINKS = Table(
    "card_links",
    METADATA,
    Column("method_key", String(300), primary_key=True),
    Column("card_key", String(300), nullable=False),
    Index("ix_card_links_card", "card_key"),
)


# -- the HTTP API (migration 0005) --------------------------------------------------------------


# A bearer token of the HTTP API: its public id, a keyed SHA-256 of the whole token (never the
# token), its role, and for a customer token its one transaction and expiry.
API_TOKENS = Table(
    "api_tokens",
    METADATA,
    Column("id", String(32), primary_key=True),
    Column("name", String(100), nullable=False),
    Column("role", String(16), nullable=False),
    Column("secret_hash", String(128), nullable=False),
    Column("transaction_id", String(255)),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("expires_at", UTCDateTime()),
    Column("revoked_at", UTCDateTime()),
)


# An Idempotency-Key of one client (`scope`, its token id): claimed in its own transaction
# before the request runs (`token` fences the completion), then the stored response.
IDEMPOTENCY = Table(
    "api_idempotency",
    METADATA,
    Column("scope", String(64), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("fingerprint", String(64), nullable=False),
    Column("token", String(32), nullable=False),
    Column("status", Integer),
    Column("body", Text),
    Column("content_type", String(100)),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("lease_expires_at", UTCDateTime()),
    Column("completed_at", UTCDateTime()),
    Index("ix_api_idempotency_created", "created_at"),
)


# One counter of the retry-request throttle: requests in the window that began at `window_start`.
THROTTLE = Table(
    "api_throttle",
    METADATA,
    Column("bucket", String(300), primary_key=True),
    Column("window_start", UTCDateTime(), nullable=False),
    Column("count", Integer, nullable=False),
)


# The first attempt of a payment sent through `POST /api/payments/process`, written before the
# processor is called: one per transaction, holding the job id its key is made from.
FIRST_ATTEMPTS = Table(
    "api_first_attempts",
    METADATA,
    Column("transaction_id", String(255), primary_key=True),
    Column("job_id", String(32), nullable=False),
    Column("idempotency_key", String(128), nullable=False),
    Column("request", Text, nullable=False),  # JSON
    Column("started_at", UTCDateTime(), nullable=False),
    Column("lease_expires_at", UTCDateTime()),
    Column("outcome", String(16)),
    Column("result", Text),  # JSON
    Column("finished_at", UTCDateTime()),
    Column("queued", Boolean, nullable=False),
)


# Daily rollups (migration 0007): counts added as attempts and jobs end, in the same transaction
# as the change (domain/rollups.py says which). Never purged.
ROLLUPS = Table(
    "retry_rollups",
    METADATA,
    Column("day", Date, primary_key=True),
    Column("metric", String(16), primary_key=True),
    Column("key", String(200), primary_key=True),
    Column("currency", String(3), primary_key=True),
    Column("count", BigInteger, nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("seconds", Float, nullable=False),
)


# A Stripe webhook event received (migration 0009): its id (so a redelivery does nothing
# twice), what it was about and what it did, written in the transaction of its effect.
STRIPE_EVENTS = Table(
    "stripe_events",
    METADATA,
    Column("event_id", String(255), primary_key=True),
    Column("type", String(64), nullable=False),
    Column("object_id", String(255)),
    Column("job_id", String(32)),
    Column("transaction_id", String(255)),
    Column("effect", String(1000), nullable=False),
    Column("applied", Boolean, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),  # when Stripe made the event
    Column("received_at", UTCDateTime(), nullable=False),
    Index("ix_stripe_events_job", "job_id"),
    Index("ix_stripe_events_object", "object_id", "type"),
)


# Counts of the jobs up to a sequence number all of which were final (migration 0010): final
# jobs never change (a revival reopens the seal first: store/counts.py reopen), so `stats` adds
# these to counts of the newer jobs alone (store/counts.py). Written by `stats` as it moves the
# mark, by `purge` as it removes sealed jobs and by a revival, never by the claim or finish. The
# row ("seal", "") holds the mark.
SEALED = Table(
    "retry_sealed_counts",
    METADATA,
    Column("kind", String(16), primary_key=True),
    Column("key", String(300), primary_key=True),
    Column("n", BigInteger, nullable=False),
)
