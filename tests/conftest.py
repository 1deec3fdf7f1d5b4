"""Shared fixtures: a clean environment, a pinned terminal, a fresh SQLite store, a fixed clock."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import OperationalError

from payretry.store.sql import SqlStore, open_store

NOW = datetime(2026, 11, 22, 12, 0, 0, tzinfo=UTC)

DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
# Read at import, before the autouse fixture clears PAYRETRY_* from the environment.
POSTGRES_URL = os.environ.get("PAYRETRY_TEST_POSTGRES_URL") or DEFAULT_POSTGRES_URL
UNDER_CI = bool(os.environ.get("CI"))


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No PAYRETRY_* or seed variables leak in; no colour; an 80-column terminal; run in tmp."""
    for name in list(os.environ):
        if name.startswith(("PAYRETRY_", "RETRY_", "STRIPE_")) or name == "NO_COLOR":
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("COLUMNS", "120")
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("TERM", "dumb")
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'payretry.db'}"


@pytest.fixture
def store(db_url: str) -> Iterator[SqlStore]:
    opened = open_store(db_url)
    yield opened
    opened.close()


@pytest.fixture(scope="session")
def postgres_url() -> URL:
    """The test server (PAYRETRY_TEST_POSTGRES_URL, default the local `test` database), checked
    once per run: unreachable skips on a laptop and fails under CI."""
    url = make_url(POSTGRES_URL)
    engine = create_engine(url, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except OperationalError as exc:
        message = (
            f"PostgreSQL at {url.render_as_string(hide_password=True)} unreachable: {exc.orig}"
        )
        if UNDER_CI:
            pytest.fail(message)
        pytest.skip(message)
    finally:
        engine.dispose()
    return url


@pytest.fixture
def pg_url(postgres_url: URL) -> Iterator[str]:
    """A URL whose connections live in a fresh schema of their own, dropped afterwards."""
    schema = f"payretry_test_{uuid.uuid4().hex[:16]}"
    admin = create_engine(postgres_url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    scoped = postgres_url.update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield scoped.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
