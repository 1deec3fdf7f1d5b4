"""The store contract runs against every backend: SQLite now, PostgreSQL when its store lands.

PostgreSQL: PAYRETRY_TEST_POSTGRES=1 turns the backend on (until issue 5 it is skipped), and
PAYRETRY_TEST_POSTGRES_URL names the server (default a local `test` database). Each test gets a
fresh schema, dropped afterwards. An unreachable server skips locally and fails under CI.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import OperationalError

from payretry.store.sql import SqlStore, open_store

DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"

# Read at import, before the autouse fixture clears PAYRETRY_* from the environment.
_POSTGRES_ENABLED = os.environ.get("PAYRETRY_TEST_POSTGRES") == "1"
_POSTGRES_URL = os.environ.get("PAYRETRY_TEST_POSTGRES_URL") or DEFAULT_POSTGRES_URL
_UNDER_CI = bool(os.environ.get("CI"))

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param(
        "postgresql",
        id="postgresql",
        marks=[
            pytest.mark.postgres,
            pytest.mark.skipif(not _POSTGRES_ENABLED, reason="PostgreSQL store: issue 5"),
        ],
    ),
]


@pytest.fixture(scope="session")
def postgres_url() -> URL:
    """The server's URL, checked once per run: skip when unreachable locally, fail under CI."""
    url = make_url(_POSTGRES_URL)
    engine = create_engine(url, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except OperationalError as exc:
        message = (
            f"PostgreSQL at {url.render_as_string(hide_password=True)} unreachable: {exc.orig}"
        )
        if _UNDER_CI:
            pytest.fail(message)
        pytest.skip(message)
    finally:
        engine.dispose()
    return url


@pytest.fixture
def postgres_store(postgres_url: URL) -> Iterator[SqlStore]:
    """A store in a schema of its own, so tests never see each other's rows."""
    schema = f"payretry_test_{uuid.uuid4().hex[:16]}"
    admin = create_engine(postgres_url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    scoped = postgres_url.update_query_dict({"options": f"-csearch_path={schema}"})
    opened = open_store(scoped.render_as_string(hide_password=False))
    try:
        yield opened
    finally:
        opened.close()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=BACKENDS)
def contract_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlStore]:
    """A fresh, empty store of each backend."""
    if request.param == "postgresql":
        yield request.getfixturevalue("postgres_store")
        return
    opened = open_store(f"sqlite:///{tmp_path / 'contract.db'}")
    try:
        yield opened
    finally:
        opened.close()
