"""The first schema: retry jobs, their attempts, daemon heartbeats.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

ACTIVE = sa.text("state IN ('running', 'scheduled')")


def _ts(name: str, nullable: bool = True) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "retry_jobs",
        sa.Column("seq", sa.Integer(), primary_key=True),
        sa.Column("id", sa.String(32), nullable=False, unique=True),
        sa.Column("transaction_id", sa.String(255), nullable=False),
        sa.Column("user_id", sa.String(255), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("error_code", sa.String(64), nullable=False),
        sa.Column("decline_code", sa.String(64)),
        sa.Column("error_message", sa.String(500)),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempt_count", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        _ts("next_retry_at"),
        _ts("created_at", nullable=False),
        _ts("updated_at", nullable=False),
        _ts("expires_at"),
        sa.Column("priority", sa.BigInteger(), nullable=False),
        sa.Column("payment_intent", sa.String(255)),
        sa.Column("customer", sa.String(255)),
        sa.Column("payment_method", sa.String(255)),
        sa.Column("checkout_session", sa.String(255)),
        sa.Column("meta", sa.JSON(), nullable=False),
        sa.Column("reason", sa.String(1000)),
        sa.Column("policy_code", sa.String(64)),
        sa.Column("lease_token", sa.String(32)),
        _ts("lease_expires_at"),
    )
    op.create_index(
        "ix_retry_jobs_due",
        "retry_jobs",
        ["state", sa.text("priority DESC"), "next_retry_at", "seq"],
    )
    op.create_index(
        "ux_retry_jobs_active_transaction",
        "retry_jobs",
        ["transaction_id"],
        unique=True,
        sqlite_where=ACTIVE,
        postgresql_where=ACTIVE,
    )
    op.create_index("ix_retry_jobs_transaction", "retry_jobs", ["transaction_id", "seq"])
    op.create_index("ix_retry_jobs_lease", "retry_jobs", ["state", "lease_expires_at"])
    op.create_index("ix_retry_jobs_expiry", "retry_jobs", ["state", "expires_at"])
    op.create_index("ix_retry_jobs_user", "retry_jobs", ["user_id", "seq"])
    op.create_table(
        "retry_attempts",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "job_seq",
            sa.Integer(),
            sa.ForeignKey("retry_jobs.seq", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("idempotency_key", sa.String(128), nullable=False, unique=True),
        sa.Column("outcome", sa.String(16), nullable=False),
        _ts("started_at", nullable=False),
        _ts("finished_at"),
        sa.Column("error_code", sa.String(64)),
        sa.Column("decline_code", sa.String(64)),
        sa.Column("message", sa.String(500)),
        sa.Column("reference", sa.String(255)),
        sa.Column("decision", sa.String(16)),
        _ts("next_retry_at"),
    )
    op.create_index(
        "ux_retry_attempts_job_number", "retry_attempts", ["job_seq", "number"], unique=True
    )
    op.create_table(
        "payretry_workers",
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        _ts("started_at", nullable=False),
        _ts("beat_at", nullable=False),
        sa.Column("interval_s", sa.Float(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("payretry_workers")
    op.drop_table("retry_attempts")
    op.drop_table("retry_jobs")
