"""The store contract runs against every backend: the in-memory twin (payretry.testing),
SQLite and PostgreSQL; so do the contracts of the HTTP API's ports (`api_ports`).

PostgreSQL is the local server unless PAYRETRY_TEST_POSTGRES_URL names another (the `pg_url`
fixture in tests/conftest.py). Each test gets a fresh schema, dropped afterwards. An unreachable
server skips locally and fails under CI.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pytest

from payretry.domain.access import TokenStore
from payretry.domain.analytics import AnalyticsStore
from payretry.domain.dispatch import DispatchStore
from payretry.domain.outbox import EventStore
from payretry.domain.ports import CardLedger, Store
from payretry.domain.requests import (
    FirstAttemptStore,
    IdempotencyStore,
    JobLookups,
    ThrottleStore,
)
from payretry.store.sql import SqlStore, open_store
from payretry.testing import (
    MemoryFirstAttempts,
    MemoryIdempotency,
    MemoryStore,
    MemoryThrottle,
    MemoryTokens,
)

BACKENDS = [
    pytest.param("memory", id="memory"),
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=[pytest.mark.postgres]),
]


class ContractStore(Store, DispatchStore, EventStore, CardLedger, AnalyticsStore, Protocol):
    """Everything the service and the CLI's read paths use of a store."""

    def dispatch_counts(self) -> dict[str, int]: ...


@pytest.fixture
def postgres_store(pg_url: str) -> Iterator[SqlStore]:
    """A store in a schema of its own, so tests never see each other's rows."""
    opened = open_store(pg_url)
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture(params=BACKENDS)
def contract_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ContractStore]:
    """A fresh, empty store of each backend."""
    if request.param == "memory":
        yield MemoryStore()
        return
    if request.param == "postgresql":
        yield request.getfixturevalue("postgres_store")
        return
    opened = open_store(f"sqlite:///{tmp_path / 'contract.db'}")
    try:
        yield opened
    finally:
        opened.close()


def sql_only(store: ContractStore, why: str) -> SqlStore:
    """The store, for a test that reads SQL itself (a plan, a dialect); skipped on the twin."""
    if not isinstance(store, SqlStore):
        pytest.skip(f"SQL only: {why}")
    return store


@dataclass(frozen=True)
class ApiPorts:
    """The HTTP API's ports of one backend: each SQL adapter on the store's database, or each
    in-memory twin (the lookups are the MemoryStore's own)."""

    store: ContractStore
    tokens: TokenStore
    throttle: ThrottleStore
    idempotency: IdempotencyStore
    first: FirstAttemptStore
    lookups: JobLookups


@pytest.fixture
def api_ports(contract_store: ContractStore) -> ApiPorts:
    if isinstance(contract_store, MemoryStore):
        return ApiPorts(
            contract_store,
            MemoryTokens(),
            MemoryThrottle(),
            MemoryIdempotency(),
            MemoryFirstAttempts(),
            contract_store,
        )
    from payretry.store.access import SqlThrottle, SqlTokens
    from payretry.store.requests import SqlFirstAttempts, SqlIdempotency, SqlLookups

    assert isinstance(contract_store, SqlStore)
    return ApiPorts(
        contract_store,
        SqlTokens(contract_store),
        SqlThrottle(contract_store),
        SqlIdempotency(contract_store),
        SqlFirstAttempts(contract_store),
        SqlLookups(contract_store),
    )
