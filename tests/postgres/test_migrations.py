"""Migrations: they build exactly the models' schema on both databases; an old database is
upgraded with its data in place; older and newer revisions are refused on open."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, text

from payretry.errors import StoreError
from payretry.store import migrate
from payretry.store.engine import make_engine
from payretry.store.sql import open_store
from payretry.store.tables import METADATA

T0 = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "postgresql":
        yield request.getfixturevalue("pg_url")
    else:
        yield f"sqlite:///{tmp_path / 'm.db'}"


def _script() -> ScriptDirectory:
    return ScriptDirectory.from_config(migrate._config(None))  # type: ignore[arg-type]


def _upgrade_to(url: str, revision: str) -> None:
    engine = make_engine(url)
    with engine.begin() as conn:
        command.upgrade(migrate._config(conn), revision)
    engine.dispose()


def test_head_constant_is_the_newest_migration() -> None:
    assert _script().get_current_head() == migrate.HEAD


def test_migrations_build_exactly_the_models_schema(url: str) -> None:
    open_store(url).close()  # a new database is brought to head on first use
    engine = make_engine(url)
    with engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), METADATA)
        indexes = {
            ix["name"]: ix
            for ix in inspect(conn).get_indexes("retry_jobs")
            if not ix.get("duplicates_constraint")  # PostgreSQL's index behind UNIQUE(id)
        }
    engine.dispose()
    # Alembic cannot compare an expression index (priority DESC): it reports it as removed
    # and added again. That one is compared by hand below.
    due = "ix_retry_jobs_due"
    assert [
        d for d in diffs if not (d[0] in ("add_index", "remove_index") and d[1].name == due)
    ] == []
    assert indexes[due]["column_names"] == ["state", "priority", "next_retry_at", "seq"]
    if engine.dialect.name == "postgresql":
        assert indexes[due].get("column_sorting") == {"priority": ("desc",)}
    else:  # SQLite's reflection drops the sorting: read the index's own SQL
        with engine.connect() as conn:
            sql = conn.exec_driver_sql(
                "SELECT sql FROM sqlite_master WHERE name = 'ix_retry_jobs_due'"
            ).scalar_one()
        assert "priority DESC" in sql, sql
    model = {ix.name: ix for ix in METADATA.tables["retry_jobs"].indexes}
    assert set(indexes) == set(model)
    # The partial unique index covers exactly the active states on both databases.
    active = indexes["ux_retry_jobs_active_transaction"]
    assert active["unique"]
    where = str(active.get("dialect_options", {}).get(f"{engine.dialect.name}_where", ""))
    for state in ("scheduled", "running", "awaiting_payer", "parked"):
        assert state in where


def test_upgrade_from_the_first_revision_keeps_the_data(url: str) -> None:
    first = min(s.revision for s in _script().walk_revisions())
    _upgrade_to(url, first)
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO retry_jobs (id, transaction_id, user_id, amount_minor, currency, "
                "error_code, state, attempt_count, max_attempts, next_retry_at, created_at, "
                "updated_at, priority, meta) VALUES ('0123456789abcdef0123456789abcdef', "
                "'txn_old', 'usr', 1999, 'USD', 'processing_error', 'scheduled', 0, 3, :t, :t, "
                ":t, 1999, '{}')"
            ),
            {"t": T0.replace(tzinfo=None) if url.startswith("sqlite") else T0},
        )
    engine.dispose()
    if first != migrate.HEAD:
        with pytest.raises(StoreError, match="payretry db upgrade"):
            open_store(url)
    engine = make_engine(url)
    before, after = migrate.upgrade(engine, url)
    engine.dispose()
    assert (before, after) == (first, migrate.HEAD)
    store = open_store(url)
    try:
        job = store.find("txn_old")
        assert job is not None
        assert job.money.amount_minor == 1999 and job.next_retry_at == T0
        assert [c.job.transaction_id for c in store.claim(T0, 10, timedelta(minutes=5))] == [
            "txn_old"
        ]
    finally:
        store.close()


def test_an_older_revision_is_migrated_when_auto_migrate_is_on(url: str) -> None:
    revisions = [s.revision for s in _script().walk_revisions()]
    if len(revisions) < 2:
        pytest.skip("only one revision exists")
    _upgrade_to(url, revisions[-1])
    with pytest.raises(StoreError, match="payretry db upgrade"):
        open_store(url)
    open_store(url, auto_migrate=True).close()
    engine = make_engine(url)
    assert migrate.revision(engine, url) == migrate.HEAD
    engine.dispose()


def test_a_newer_revision_is_refused(url: str) -> None:
    open_store(url).close()
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999_newer'"))
    engine.dispose()
    with pytest.raises(StoreError, match="newer payretry"):
        open_store(url)
    engine = make_engine(url)
    with pytest.raises(StoreError, match="newer payretry"):
        migrate.upgrade(engine, url)
    engine.dispose()


def test_tables_without_a_revision_are_refused(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE retry_jobs (seq INTEGER PRIMARY KEY)"))
    engine.dispose()
    with pytest.raises(StoreError, match="no schema revision"):
        open_store(url)
