"""The schema revision this payretry writes and reads, in a module of its own so that a command
can check it without importing SQLAlchemy or Alembic (store/sqlite_read.py)."""

HEAD = "0011"  # kept equal to the newest file in migrations/versions (a test checks)
