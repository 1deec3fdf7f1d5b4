"""Schema migrations (Alembic, shipped inside the package).

A new, empty database is brought to head on first use. A database at an older revision is
refused with a message naming `payretry db upgrade` (unless auto_migrate is on); one at a
revision this payretry does not know (written by a newer payretry) is refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, inspect, text
from sqlalchemy.exc import DBAPIError, OperationalError

from payretry.errors import StoreError
from payretry.store.engine import describe_url
from payretry.store.schema import HEAD as HEAD  # re-exported: `db current` shows it

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).with_name("migrations")
_OURS = {"retry_jobs", "retry_attempts", "payretry_workers"}
_LOCK_KEY = 7_294_311_806  # pg_advisory_xact_lock: one migrator at a time


def _config(conn: Connection) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = conn
    return config


def known_revisions() -> set[str]:
    from alembic.script import ScriptDirectory

    config = _config(None)  # type: ignore[arg-type]
    return {script.revision for script in ScriptDirectory.from_config(config).walk_revisions()}


def current_revision(conn: Connection) -> str | None:
    if "alembic_version" not in inspect(conn).get_table_names():
        return None
    row = conn.execute(text("SELECT version_num FROM alembic_version")).first()
    return str(row[0]) if row else None


def _upgrade(conn: Connection, target: str = "head") -> None:
    from alembic import command

    command.upgrade(_config(conn), target)


def _lock(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})


def _check(conn: Connection, url: str, auto_migrate: bool) -> str | None:
    """None when the schema is usable as it is; else the revision to upgrade from ('' = new)."""
    current = current_revision(conn)
    if current == HEAD:
        return None
    if current is None:
        if _OURS & set(inspect(conn).get_table_names()):
            raise StoreError(
                f"database {describe_url(url)} has payretry tables but no schema revision"
            )
        return ""
    if current not in known_revisions():
        raise StoreError(
            f"database {describe_url(url)} was written by a newer payretry (schema revision "
            f"{current}; this version knows up to {HEAD}); upgrade payretry"
        )
    if not auto_migrate:
        raise StoreError(
            f"database {describe_url(url)} is at schema revision {current}, older than this "
            f"payretry's {HEAD}: run `payretry db upgrade` (or set [database] auto_migrate = true)"
        )
    return current


def ensure_schema(engine: Engine, url: str, *, auto_migrate: bool = False) -> None:
    """Check the schema on open; create it in a new database; migrate if allowed."""
    try:
        with engine.connect() as conn:
            needed = _check(conn, url, auto_migrate)
            conn.rollback()
        if needed is None:
            return
        with engine.begin() as conn:  # one migrator at a time; check again under the lock
            _lock(conn)
            if _check(conn, url, auto_migrate) is not None:
                _upgrade(conn)
    except OperationalError as exc:
        raise StoreError(f"cannot open database {describe_url(url)}: {exc.orig}") from None
    except DBAPIError as exc:
        raise StoreError(f"database {describe_url(url)} failed: {exc.orig}") from None


def upgrade(engine: Engine, url: str) -> tuple[str | None, str]:
    """`payretry db upgrade`: (revision before, revision after)."""
    try:
        with engine.begin() as conn:
            _lock(conn)
            before = current_revision(conn)
            if before is not None and before not in known_revisions():
                _check(conn, url, True)  # raises: newer than this payretry
            if before is None and _OURS & set(inspect(conn).get_table_names()):
                raise StoreError(
                    f"database {describe_url(url)} has payretry tables but no schema revision"
                )
            _upgrade(conn)
            after = current_revision(conn)
    except OperationalError as exc:
        raise StoreError(f"cannot open database {describe_url(url)}: {exc.orig}") from None
    assert after is not None
    return before, after


def revision(engine: Engine, url: str) -> str | None:
    """`payretry db current`."""
    try:
        with engine.connect() as conn:
            return current_revision(conn)
    except OperationalError as exc:
        raise StoreError(f"cannot open database {describe_url(url)}: {exc.orig}") from None
