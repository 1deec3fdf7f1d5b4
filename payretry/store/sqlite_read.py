"""One job read through the sqlite3 module alone, for a command that reads a job and exits
(`payretry status`): importing SQLAlchemy and building the tables cost such a command more than
the rest of its work together.

Only a database this payretry can read as it is gets read here: a plain `sqlite:///PATH` URL
(store/urls.py) naming a file that exists, at this payretry's schema revision. Anything else (a
new file, which the store would create; an older or a newer schema, which it refuses or
migrates; an in-memory database, a query string) opens the full store instead, which answers
as it always has. The values are converted as the store's column types convert them (aware UTC
times, JSON metadata) and mapped by store/rows.py, so both give the same Job (a contract test
compares them on every kind of job)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.request import pathname2url

from payretry.domain.models import Job
from payretry.errors import StoreError
from payretry.masking import mask_url
from payretry.store.rows import attempt_from_mapping, job_from_mapping
from payretry.store.schema import ACTIVE_SQL, HEAD
from payretry.store.urls import memory_database, plain_sqlite_database

BUSY_TIMEOUT_S = 30.0  # as the store's engine waits for a lock (store/engine.py)

# The columns the store's UTCDateTime type reads back as aware UTC (store/tables.py; a
# contract test checks that these are exactly those columns).
JOB_TIMES = frozenset(
    {
        "next_retry_at",
        "created_at",
        "updated_at",
        "expires_at",
        "lease_expires_at",
        "action_expires_at",
        "dispatched_at",
    }
)
ATTEMPT_TIMES = frozenset({"started_at", "finished_at", "next_retry_at"})
JOB_JSON = frozenset({"meta"})

_FIND = (  # as SqlStore.find: the active job first, else the latest
    f"SELECT * FROM retry_jobs WHERE transaction_id = ? ORDER BY {ACTIVE_SQL} DESC, seq DESC "
    "LIMIT 1"
)
_ATTEMPTS = "SELECT * FROM retry_attempts WHERE job_seq = ? ORDER BY number"


def _utc(value: str | None) -> datetime | None:
    # SQLite keeps the store's times as naive UTC text ("2026-11-22 12:00:00.000123").
    return None if value is None else datetime.fromisoformat(value).replace(tzinfo=UTC)


def _json(value: str | None) -> Any:
    return None if value is None else json.loads(value)


Converters = dict[str, Callable[[Any], Any]]
_JOB_CONVERT: Converters = {**dict.fromkeys(JOB_TIMES, _utc), **dict.fromkeys(JOB_JSON, _json)}
_ATTEMPT_CONVERT: Converters = dict.fromkeys(ATTEMPT_TIMES, _utc)


def _converted(row: sqlite3.Row, convert: Converters) -> dict[str, Any]:
    return {name: convert[name](row[name]) if name in convert else row[name] for name in row.keys()}


def _readable_file(url: str) -> Path | None:
    """The file of a plain SQLite URL when it exists; None when only the full store can open
    the URL (memory, `file:` URIs, `~`, a missing file that opening would create)."""
    database = plain_sqlite_database(url)
    if database is None or memory_database(url) is not None:
        return None
    if database.startswith(("file:", "~")):
        return None
    path = Path(database)
    return path if path.is_file() else None


class SqliteJobReader:
    """`find` as the store answers it, over one sqlite3 connection that never writes."""

    def __init__(self, conn: sqlite3.Connection, url: str) -> None:
        self._conn = conn
        self._url = url

    @classmethod
    def open(cls, url: str) -> SqliteJobReader | None:
        """A reader for `url`, or None when the full store must open it (see the module)."""
        path = _readable_file(url)
        if path is None:
            return None
        try:  # mode=rw: never creates the file
            conn = sqlite3.connect(
                f"file:{pathname2url(str(path.resolve()))}?mode=rw",
                uri=True,
                timeout=BUSY_TIMEOUT_S,
                isolation_level=None,  # transactions as _read begins them
            )
        except sqlite3.Error:
            return None  # the store opens it and says why it cannot
        conn.row_factory = sqlite3.Row
        reader = cls(conn, url)
        try:
            current = reader._revision()
        except StoreError:
            conn.close()
            return None
        if current != HEAD:
            conn.close()
            return None
        return reader

    def close(self) -> None:
        self._conn.close()

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """One read transaction: the job and its attempts from the same snapshot."""
        conn = self._conn
        try:
            conn.execute("BEGIN")
            try:
                yield conn
            finally:
                conn.execute("ROLLBACK")
        except sqlite3.Error as exc:
            raise StoreError(f"database {mask_url(self._url)} failed: {exc}") from None

    def _revision(self) -> str | None:
        with self._read() as conn:
            known = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'alembic_version'"
            ).fetchone()
            if known is None:
                return None
            row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        return None if row is None else str(row[0])

    def find(self, transaction_id: str) -> Job | None:
        """The active job for a transaction, or else its most recent one (SqlStore.find)."""
        with self._read() as conn:
            row = conn.execute(_FIND, (transaction_id,)).fetchone()
            if row is None:
                return None
            attempts = conn.execute(_ATTEMPTS, (row["seq"],)).fetchall()
        return job_from_mapping(
            _converted(row, _JOB_CONVERT),
            [attempt_from_mapping(_converted(a, _ATTEMPT_CONVERT)) for a in attempts],
        )
