"""The HTTP API: bearer tokens (a keyed hash each), stored responses of idempotency keys, the
retry-request throttle's counters, and the first attempts of payments processed through it.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def _ts(name: str, nullable: bool = True) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("secret_hash", sa.String(128), nullable=False),
        sa.Column("transaction_id", sa.String(255)),
        _ts("created_at", nullable=False),
        _ts("expires_at"),
        _ts("revoked_at"),
    )
    op.create_table(
        "api_idempotency",
        sa.Column("scope", sa.String(64), primary_key=True),
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("token", sa.String(32), nullable=False),
        sa.Column("status", sa.Integer()),
        sa.Column("body", sa.Text()),
        sa.Column("content_type", sa.String(100)),
        _ts("created_at", nullable=False),
        _ts("lease_expires_at"),
        _ts("completed_at"),
    )
    op.create_index("ix_api_idempotency_created", "api_idempotency", ["created_at"])
    op.create_table(
        "api_throttle",
        sa.Column("bucket", sa.String(300), primary_key=True),
        _ts("window_start", nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
    )
    op.create_table(
        "api_first_attempts",
        sa.Column("transaction_id", sa.String(255), primary_key=True),
        sa.Column("job_id", sa.String(32), nullable=False),
        sa.Column("idempotency_key", sa.String(128), nullable=False),
        sa.Column("request", sa.Text(), nullable=False),
        _ts("started_at", nullable=False),
        _ts("lease_expires_at"),
        sa.Column("outcome", sa.String(16)),
        sa.Column("result", sa.Text()),
        _ts("finished_at"),
        sa.Column("queued", sa.Boolean(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("api_first_attempts")
    op.drop_table("api_throttle")
    op.drop_index("ix_api_idempotency_created", table_name="api_idempotency")
    op.drop_table("api_idempotency")
    op.drop_table("api_tokens")
