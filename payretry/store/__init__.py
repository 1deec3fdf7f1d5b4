"""SQL storage (SQLAlchemy Core on SQLite or PostgreSQL): the one home of sqlalchemy, alembic."""
