"""Engines: SQLite with WAL, a busy timeout and BEGIN IMMEDIATE; PostgreSQL with a checked pool."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import ConnectionPoolEntry

from payretry.errors import InvalidInput, StoreError
from payretry.masking import mask_url
from payretry.store.purge import Batches, Holds, batches_for
from payretry.store.tables import use_postgresql

READONLY = "payretry_readonly"
# SQLite's page cache per connection (KiB) and the WAL size (pages) that triggers a checkpoint.
SQLITE_CACHE_KIB = 16 * 1024
SQLITE_CHECKPOINT_PAGES = 10_000


def describe_url(url: str) -> str:
    """The URL as errors show it: its password and credential query parameters (password=,
    sslpassword=, ...) masked. Works on any text, parseable or not."""
    return mask_url(url)


def new_sqlite_file(url: str) -> Path | None:
    """The file a SQLite URL names when it does not exist yet (opening the store would create
    it); None for PostgreSQL, in-memory databases and files that exist."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return None
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return None
    if database.startswith("file:"):
        return None
    path = Path(database).expanduser()
    return None if path.exists() else path


def make_engine(
    url: str,
    *,
    busy_timeout_s: float = 30.0,
    pool_size: int = 5,
    statement_timeout: timedelta = timedelta(seconds=30),
    connect_timeout_s: int = 10,
) -> Engine:
    """SQLite: WAL, busy timeout, BEGIN IMMEDIATE. PostgreSQL (psycopg 3): a small pool whose
    connections are checked before use (a restarted server or a killed backend costs one
    reconnect, not a crash), a connect timeout and a statement timeout."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        raise InvalidInput(
            "is not a database URL (example: sqlite:///payretry.db)", field="database.url"
        ) from None
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(url, parsed.database, busy_timeout_s)
    options: dict[str, object] = {"pool_pre_ping": True}
    if parsed.get_backend_name() == "postgresql":
        use_postgresql()
        millis = int(statement_timeout.total_seconds() * 1000)
        given = parsed.query.get("options", "")
        given = " ".join(given) if isinstance(given, tuple) else given
        options.update(
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_recycle=1800,
            connect_args={
                "connect_timeout": connect_timeout_s,
                "options": f"{given} -c statement_timeout={millis}".strip(),
                "application_name": parsed.query.get("application_name") or "payretry",
            },
        )
    try:
        return create_engine(url, **options)
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
        # Throughput, not durability (synchronous stays NORMAL: a commit survives a crash of
        # the process, not a power cut, as before). A run-due batch dirties some thousands of
        # pages across the jobs' indexes; SQLite's 2 MiB page cache re-read them from the OS
        # on every batch, and its checkpoint every 1,000 WAL pages ran (and fsynced) after
        # almost every commit, copying back pages the next batch changed again.
        cursor.execute(f"PRAGMA cache_size = -{SQLITE_CACHE_KIB}")
        cursor.execute(f"PRAGMA wal_autocheckpoint = {SQLITE_CHECKPOINT_PAGES}")
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


def dialect_insert(dialect: str) -> Any:
    """The dialect's own INSERT construct (ON CONFLICT DO NOTHING / DO UPDATE), for upserts."""
    if dialect == "postgresql":  # imported only there: SQLite never loads this dialect
        from sqlalchemy.dialects import postgresql

        return postgresql.insert
    from sqlalchemy.dialects import sqlite

    return sqlite.insert


def purge_batches(engine: Engine, holds: Holds | None = None) -> Batches:
    """The batches a long delete on this engine's database goes in (store/purge.py), each
    timed through `Batches.transaction` into `holds`; on SQLite with a PASSIVE checkpoint
    between two batches (below)."""
    batches = batches_for(engine.dialect.name)
    if holds is not None:
        batches.holds = holds
    if engine.dialect.name == "sqlite":
        batches.between = lambda: checkpoint(engine)
    return batches


def checkpoint(engine: Engine) -> None:
    """Copy what the WAL holds into the database file now, between two batches, outside any
    transaction (PASSIVE: it waits for no reader or writer, and holds no write lock).

    Without it a purge's deletes fill the WAL to its autocheckpoint (10,000 pages) every ten
    batches or so, and the COMMIT that crosses it, the purge's or a run-due's, copies and syncs
    them all before it returns (0.4 to 0.75 s at a million jobs; once 2.3 s, in a run-due's
    COMMIT, while the purge's batch beside it took ten times the ones before). No writer waits
    for that copy (SQLite checkpoints after the lock is released), but a batch beside it runs
    slow, and the committer's own hold, timed to the end of its COMMIT, counts it. Here it runs
    in the purge's own pause instead, a batch's pages at a time."""
    with engine.connect() as conn:
        dbapi = conn.connection.dbapi_connection
        if dbapi is None:  # pragma: no cover (a connection just checked out has one)
            return
        cursor = dbapi.cursor()
        try:
            cursor.execute("PRAGMA wal_checkpoint(PASSIVE)")
        finally:
            cursor.close()
