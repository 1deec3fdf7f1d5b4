"""SQS dispatch: what was sent to the queue, and when (issue 6).

`dispatch_attempt` is the attempt whose message was last committed to be sent; a scheduled job
whose next attempt (attempt_count + 1) has no message is "undispatched". `dispatched_at` is when
that intent was recorded, `dispatch_message_id` the queue's id once the send was confirmed: an
intent left unconfirmed (a crash between the two) is sent again by the rescue sweep.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

UNDISPATCHED = sa.text(
    "state = 'scheduled' AND (dispatch_attempt IS NULL OR dispatch_attempt <= attempt_count)"
)
UNSENT = sa.text("dispatched_at IS NOT NULL AND dispatch_message_id IS NULL")


def upgrade() -> None:
    with op.batch_alter_table("retry_jobs") as batch:
        batch.add_column(sa.Column("dispatch_attempt", sa.Integer()))
        batch.add_column(sa.Column("dispatched_at", sa.DateTime(timezone=True)))
        batch.add_column(sa.Column("dispatch_message_id", sa.String(128)))
    op.create_index(
        "ix_retry_jobs_undispatched",
        "retry_jobs",
        ["state", "next_retry_at"],
        sqlite_where=UNDISPATCHED,
        postgresql_where=UNDISPATCHED,
    )
    op.create_index(
        "ix_retry_jobs_unsent",
        "retry_jobs",
        ["dispatched_at"],
        sqlite_where=UNSENT,
        postgresql_where=UNSENT,
    )


def downgrade() -> None:
    op.drop_index("ix_retry_jobs_unsent", table_name="retry_jobs")
    op.drop_index("ix_retry_jobs_undispatched", table_name="retry_jobs")
    with op.batch_alter_table("retry_jobs") as batch:
        batch.drop_column("dispatch_message_id")
        batch.drop_column("dispatched_at")
        batch.drop_column("dispatch_attempt")
