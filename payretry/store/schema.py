"""What the schema says that a command can read without importing SQLAlchemy or Alembic
(store/sqlite_read.py): the revision this payretry writes and reads, and the test for an active
job that the partial indexes (store/tables.py) and the reader's queries share."""

from payretry.domain.models import ACTIVE_STATES

HEAD = "0011"  # kept equal to the newest file in migrations/versions (a test checks)

# `state IN ('awaiting_payer', 'running', 'scheduled')`: a query that spells it otherwise than
# the partial indexes do is not served by them on SQLite.
ACTIVE_SQL = "state IN ({})".format(", ".join(f"'{s.value}'" for s in sorted(ACTIVE_STATES)))
