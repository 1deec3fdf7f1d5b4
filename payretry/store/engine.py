"""Engines: SQLite with WAL, a busy timeout and BEGIN IMMEDIATE; the schema check on open."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, inspect, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError
from sqlalchemy.pool import ConnectionPoolEntry
from sqlmodel import SQLModel

from payretry.errors import InvalidInput, StoreError
from payretry.store.tables import META, SCHEMA_VERSION

READONLY = "payretry_readonly"


def describe_url(url: str) -> str:
    """The URL with any password hidden."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable database URL>"


def make_engine(url: str, *, busy_timeout_s: float = 30.0) -> Engine:
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise InvalidInput(
            f"{url!r} is not a database URL (example: sqlite:///payretry.db)", field="database.url"
        ) from None
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(url, parsed.database, busy_timeout_s)
    try:
        return create_engine(url, pool_pre_ping=True)
    except (ArgumentError, ImportError) as exc:
        raise StoreError(f"cannot use database {describe_url(url)}: {exc}") from None


def _sqlite_engine(url: str, database: str | None, busy_timeout_s: float) -> Engine:
    if database and database != ":memory:" and not database.startswith("file:"):
        parent = Path(database).expanduser().resolve().parent
        if not parent.is_dir():
            raise StoreError(f"cannot open database {database}: folder {parent} does not exist")
    engine = create_engine(url, connect_args={"timeout": busy_timeout_s})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, record: ConnectionPoolEntry) -> None:
        # Let SQLAlchemy, not pysqlite, decide when transactions begin (the documented recipe).
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Writers take the lock up front, so concurrent runners wait (busy timeout)
        # instead of failing on a lock upgrade; readers use a deferred transaction.
        if conn.get_execution_options().get(READONLY):
            conn.exec_driver_sql("BEGIN")
        else:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def prepare_schema(engine: Engine, url: str) -> None:
    """Create the schema in a new database; refuse one written by a newer payretry."""
    try:
        with engine.connect() as conn:
            names = set(inspect(conn).get_table_names())
            if "payretry_meta" in names:
                row = conn.execute(
                    select(META.c.value).where(META.c.key == "schema_version")
                ).first()
                version = int(row[0]) if row else 0
                if version > SCHEMA_VERSION:
                    raise StoreError(
                        f"database {describe_url(url)} was written by a newer payretry "
                        f"(schema {version}; this version knows {SCHEMA_VERSION}); upgrade payretry"
                    )
                if version == SCHEMA_VERSION and set(SQLModel.metadata.tables) <= names:
                    return
            elif names & {"retry_jobs", "retry_attempts"}:
                raise StoreError(
                    f"database {describe_url(url)} has payretry tables but no schema version"
                )
            conn.rollback()
        with engine.begin() as conn:
            SQLModel.metadata.create_all(conn)
            conn.execute(META.delete().where(META.c.key == "schema_version"))
            conn.execute(META.insert().values(key="schema_version", value=str(SCHEMA_VERSION)))
    except OperationalError as exc:
        raise StoreError(f"cannot open database {describe_url(url)}: {exc.orig}") from None
    except DBAPIError as exc:
        raise StoreError(f"database {describe_url(url)} failed: {exc.orig}") from None
