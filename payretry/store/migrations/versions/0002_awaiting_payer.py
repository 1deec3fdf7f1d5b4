"""Checkout: jobs that wait on the customer (state awaiting_payer, counted as active) and the
Checkout Session they wait on (action_ref, action_url, action_expires_at).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

OLD_ACTIVE = sa.text("state IN ('running', 'scheduled')")
ACTIVE = sa.text("state IN ('awaiting_payer', 'running', 'scheduled')")
INDEX = "ux_retry_jobs_active_transaction"


def _active_index(predicate: sa.TextClause) -> None:
    op.drop_index(INDEX, table_name="retry_jobs")
    op.create_index(
        INDEX,
        "retry_jobs",
        ["transaction_id"],
        unique=True,
        sqlite_where=predicate,
        postgresql_where=predicate,
    )


def upgrade() -> None:
    with op.batch_alter_table("retry_jobs") as batch:
        batch.add_column(sa.Column("action_ref", sa.String(255)))
        batch.add_column(sa.Column("action_url", sa.String(2048)))
        batch.add_column(sa.Column("action_expires_at", sa.DateTime(timezone=True)))
    _active_index(ACTIVE)


def downgrade() -> None:
    _active_index(OLD_ACTIVE)
    with op.batch_alter_table("retry_jobs") as batch:
        batch.drop_column("action_expires_at")
        batch.drop_column("action_url")
        batch.drop_column("action_ref")
