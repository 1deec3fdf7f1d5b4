"""SQL storage (SQLModel over SQLite or PostgreSQL). The only home of sqlmodel and sqlalchemy."""
