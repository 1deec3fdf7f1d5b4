"""Database URLs as the store reads them (SQLAlchemy's parser): checked before anything opens,
so a bad URL is an input error naming the setting, and never echoed with its password.

A plain file URL (`sqlite:///PATH`, no query and no %-escape) is read here without SQLAlchemy,
exactly as its parser reads it (the database is the text after the third slash): importing
SQLAlchemy costs a command that only reads one job more than the rest of its work."""

from __future__ import annotations

from payretry.domain.validation import shown
from payretry.masking import mask_url

_PLAIN_SQLITE = "sqlite:///"


def plain_sqlite_database(url: str) -> str | None:
    """The database of a plain `sqlite:///PATH` URL, as SQLAlchemy's parser reads it ('' when
    no path is given); None for every other URL (PostgreSQL, a query string, %-escapes, a
    driver name), which only SQLAlchemy reads."""
    if not url.startswith(_PLAIN_SQLITE):
        return None
    database = url[len(_PLAIN_SQLITE) :]
    return None if "?" in database or "%" in database else database


def check_database_url(text: str) -> str:
    """`text` if it is a SQLite or PostgreSQL URL SQLAlchemy can read (a port that is not a
    number would otherwise fail only on first use); ValueError saying what is wrong."""
    if plain_sqlite_database(text) is not None:
        return text  # no host, so no port: SQLAlchemy reads every such URL
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(text)
        port = url.port
    except (ArgumentError, ValueError):
        raise ValueError(
            f"{shown(mask_url(text), limit=200)} is not a database URL like "
            "sqlite:///payretry.db or postgresql+psycopg://user@host:5432/db "
            "(a port must be a number)"
        ) from None
    if url.get_backend_name() not in ("sqlite", "postgresql"):
        raise ValueError(
            "payretry stores on SQLite (sqlite:///...) or PostgreSQL (postgresql://...)"
        )
    if port is not None and not 1 <= port <= 65535:
        raise ValueError("has a port outside 1 to 65535")
    return text


def memory_database(url: str) -> str | None:
    """Why a SQLite URL keeps nothing once the process exits; None for a file or PostgreSQL."""
    database = plain_sqlite_database(url)
    if database is None:
        from sqlalchemy.engine import make_url

        parsed = make_url(url)
        if parsed.get_backend_name() != "sqlite":
            return None
        database = parsed.database or ""
    if not database:
        return "has no file path (an unset variable in sqlite:///$DIR/x.db?)"
    if database == ":memory:" or "mode=memory" in url.lower():
        return "is an in-memory database"
    return None
