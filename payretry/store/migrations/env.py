"""Alembic environment for payretry. payretry runs migrations itself (`payretry db upgrade`, or
automatically on a new database) and always hands over its own connection, inside its own
transaction, so the upgrade and the check that asked for it are one unit."""

from __future__ import annotations

from alembic import context

from payretry.store.tables import METADATA

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only reachable through the alembic CLI
    raise SystemExit("run migrations with `payretry db upgrade`, not the alembic command")

context.configure(
    connection=connection,
    target_metadata=METADATA,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
