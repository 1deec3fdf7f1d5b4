"""The card ledger and the card-network rules (issue 13): one row per authorization sent on a
card (and per decline a job was queued after), keyed by the card; the links from payment
methods to their cards; each job's card network and fingerprint, and the rule that last moved
or stopped it (the new final state `blocked`).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ALTER TABLE ADD COLUMN on both databases: a batch operation would rebuild the table
    # on SQLite and, reflecting it, lose the DESC of the due index's expression.
    op.add_column("retry_jobs", sa.Column("card_network", sa.String(16)))
    op.add_column("retry_jobs", sa.Column("card_fingerprint", sa.String(64)))
    op.add_column("retry_jobs", sa.Column("network_rule", sa.String(64)))
    op.create_table(
        "card_ledger",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
        sa.Column("card_key", sa.String(300), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("settled_at", sa.DateTime(timezone=True)),
        sa.Column("network", sa.String(16), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("initiated_by", sa.String(16), nullable=False),
        sa.Column("network_advice_code", sa.String(8)),
        sa.Column("network_decline_code", sa.String(8)),
        sa.Column("job_id", sa.String(32), nullable=False),
        sa.Column("attempt_number", sa.Integer(), nullable=False),
    )
    op.create_index("ix_card_ledger_card", "card_ledger", ["card_key", "at"])
    op.create_table(
        "card_links",
        sa.Column("method_key", sa.String(300), primary_key=True),
        sa.Column("card_key", sa.String(300), nullable=False),
    )
    op.create_index("ix_card_links_card", "card_links", ["card_key"])


def downgrade() -> None:
    op.drop_table("card_links")
    op.drop_table("card_ledger")
    with op.batch_alter_table("retry_jobs") as batch:
        batch.drop_column("network_rule")
        batch.drop_column("card_fingerprint")
        batch.drop_column("card_network")
