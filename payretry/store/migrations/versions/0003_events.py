"""The event outbox and its deliveries (issue 7).

retry_outbox: one entry per state change, written in the same transaction as the change, in
`seq` order; on PostgreSQL `txid` is the writing transaction's id (0 on SQLite, where the order
index stays empty). retry_outbox_sinks: per sink, the (txid, seq) of the last entry delivered, a
delivery lease, failures and the next try.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _ts(name: str, nullable: bool = True) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


ORDERED = sa.text("txid <> 0")


def upgrade() -> None:
    op.create_table(
        "retry_outbox",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
        sa.Column("txid", sa.BigInteger(), nullable=False),
        sa.Column("job_id", sa.String(32), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        _ts("occurred_at", nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_retry_outbox_order", "retry_outbox", ["txid", "seq"], sqlite_where=ORDERED)
    op.create_index("ix_retry_outbox_job", "retry_outbox", ["job_id", "seq"])
    op.create_table(
        "retry_outbox_sinks",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("cursor_txid", sa.BigInteger(), nullable=False),
        sa.Column("cursor_seq", sa.BigInteger(), nullable=False),
        sa.Column("delivered", sa.BigInteger(), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(500)),
        _ts("retry_at"),
        sa.Column("lease_token", sa.String(32)),
        _ts("lease_expires_at"),
        _ts("updated_at", nullable=False),
    )


def downgrade() -> None:
    op.drop_table("retry_outbox_sinks")
    op.drop_index("ix_retry_outbox_job", table_name="retry_outbox")
    op.drop_index("ix_retry_outbox_order", table_name="retry_outbox")
    op.drop_table("retry_outbox")
