"""The active jobs' own index for `stats`: their seq, state, currency and amount, over the jobs
in an active state alone (a few thousand beside a million finished ones), so `stats` reads the
oldest active job (the sealing's limit) as one entry and the pending amounts from this small
index, whatever the planner's statistics make of the index on state (store/reports.py). And
the outbox's narrowest index, on txid alone, for `stats` to count the entries: SQLite counts a
table through its smallest index (3,050,000 entries: 16-37 ms, against 86-132 ms through the
index on job_id).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

# The same predicate as tables.ACTIVE_PREDICATE, written out: a migration stays what it was
# when the states change.
_ACTIVE = sa.text("state IN ('awaiting_payer', 'parked', 'running', 'scheduled')")


def upgrade() -> None:
    op.create_index(
        "ix_retry_jobs_active_stats",
        "retry_jobs",
        ["seq", "state", "currency", "amount_minor"],
        sqlite_where=_ACTIVE,
        postgresql_where=_ACTIVE,
    )
    op.create_index("ix_retry_outbox_count", "retry_outbox", ["txid"])


def downgrade() -> None:
    op.drop_index("ix_retry_outbox_count", table_name="retry_outbox")
    op.drop_index("ix_retry_jobs_active_stats", table_name="retry_jobs")
