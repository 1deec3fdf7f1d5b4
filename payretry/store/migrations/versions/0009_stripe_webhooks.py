"""Stripe webhooks in (issue 15): each event received, recorded by id with what it did; the
attempt after which a job was revived with new card data; indexes to find the jobs of a
payment, a customer and a Checkout Session.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ALTER TABLE ADD COLUMN (see 0007: a batch operation would rebuild the table).
    op.add_column("retry_jobs", sa.Column("revived_after", sa.Integer()))
    op.create_index("ix_retry_jobs_payment_intent", "retry_jobs", ["payment_intent"])
    op.create_index("ix_retry_jobs_customer", "retry_jobs", ["customer", "seq"])
    op.create_index("ix_retry_jobs_action", "retry_jobs", ["action_ref"])
    op.create_table(
        "stripe_events",
        sa.Column("event_id", sa.String(255), primary_key=True),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("object_id", sa.String(255)),
        sa.Column("job_id", sa.String(32)),
        sa.Column("transaction_id", sa.String(255)),
        sa.Column("effect", sa.String(1000), nullable=False),
        sa.Column("applied", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_stripe_events_job", "stripe_events", ["job_id"])
    op.create_index("ix_stripe_events_object", "stripe_events", ["object_id", "type"])


def downgrade() -> None:
    op.drop_table("stripe_events")
    op.drop_index("ix_retry_jobs_action", "retry_jobs")
    op.drop_index("ix_retry_jobs_customer", "retry_jobs")
    op.drop_index("ix_retry_jobs_payment_intent", "retry_jobs")
    with op.batch_alter_table("retry_jobs") as batch:
        batch.drop_column("revived_after")
