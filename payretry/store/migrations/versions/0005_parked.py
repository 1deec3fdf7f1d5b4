"""Poison jobs and lost messages (issue 11): the rescue count of a job's current attempt, the
state `parked` (counted as active: its attempt may have charged), and an index for the sweep that
re-sends dispatched jobs whose SQS message was lost outside payretry.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

OLD_ACTIVE = sa.text("state IN ('awaiting_payer', 'running', 'scheduled')")
ACTIVE = sa.text("state IN ('awaiting_payer', 'parked', 'running', 'scheduled')")
ACTIVE_INDEX = "ux_retry_jobs_active_transaction"
DISPATCHED = sa.text("state = 'scheduled' AND dispatch_attempt > attempt_count")


def _active_index(predicate: sa.TextClause) -> None:
    op.drop_index(ACTIVE_INDEX, table_name="retry_jobs")
    op.create_index(
        ACTIVE_INDEX,
        "retry_jobs",
        ["transaction_id"],
        unique=True,
        sqlite_where=predicate,
        postgresql_where=predicate,
    )


def upgrade() -> None:
    # A plain ALTER TABLE ADD COLUMN on both databases: a batch operation would rebuild the table
    # on SQLite and, reflecting it, lose the DESC of the due index's expression.
    op.add_column(
        "retry_jobs",
        sa.Column("rescues", sa.Integer(), nullable=False, server_default=sa.text("0")),
    )
    _active_index(ACTIVE)
    op.create_index(
        "ix_retry_jobs_dispatched",
        "retry_jobs",
        ["next_retry_at"],
        sqlite_where=DISPATCHED,
        postgresql_where=DISPATCHED,
    )


def downgrade() -> None:
    op.drop_index("ix_retry_jobs_dispatched", table_name="retry_jobs")
    _active_index(OLD_ACTIVE)
    with op.batch_alter_table("retry_jobs") as batch:
        batch.drop_column("rescues")
