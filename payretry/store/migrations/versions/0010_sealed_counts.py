"""Sealed counts: the counts behind `stats` of the oldest jobs, all of them final, kept so
that `stats` reads only the newer jobs (store/counts.py).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "retry_sealed_counts",
        sa.Column("kind", sa.String(16), primary_key=True),
        sa.Column("key", sa.String(300), primary_key=True),
        sa.Column("n", sa.BigInteger(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("retry_sealed_counts")
