"""The store contract runs against every backend: SQLite and PostgreSQL.

PostgreSQL is the local server unless PAYRETRY_TEST_POSTGRES_URL names another (the `pg_url`
fixture in tests/conftest.py). Each test gets a fresh schema, dropped afterwards. An unreachable
server skips locally and fails under CI.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from payretry.store.sql import SqlStore, open_store

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=[pytest.mark.postgres]),
]


@pytest.fixture
def postgres_store(pg_url: str) -> Iterator[SqlStore]:
    """A store in a schema of its own, so tests never see each other's rows."""
    opened = open_store(pg_url)
    try:
        yield opened
    finally:
        opened.close()


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
