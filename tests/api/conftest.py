"""The HTTP API under test: a real uvicorn on a free loopback port (in a thread of the test
process, so the clock can be passed in), over SQLite or PostgreSQL, with a token per role."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from payretry.api.server import ApiServer
from payretry.config import load_settings
from payretry.domain.access import Role
from payretry.wiring import Wiring

SECRET = "test-token-secret-0123456789"
SEED_BODY: dict[str, Any] = {
    "error": {"code": "processing_error", "message": "Payment processor timeout"},
    "metadata": {"userId": "user_456", "amount": 99.99, "currency": "USD", "orderId": "A-17"},
}


class Clock:
    """Real time plus an offset the test moves on."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, **delta: float) -> None:
        self.offset += timedelta(**delta)


@dataclass
class Api:
    url: str
    wiring: Wiring
    server: ApiServer
    clock: Clock
    tokens: dict[str, str] = field(default_factory=dict)
    clients: list[httpx.Client] = field(default_factory=list)

    def client(self, role: str | None = "admin", **headers: str) -> httpx.Client:
        if role is not None:
            headers["Authorization"] = f"Bearer {self.tokens.get(role, role)}"
        client = httpx.Client(base_url=self.url, headers=headers, timeout=30)
        self.clients.append(client)
        return client

    def customer(self, transaction_id: str, ttl: timedelta = timedelta(hours=1)) -> str:
        text, _ = self.wiring.tokens().create(
            Role.CUSTOMER, f"customer:{transaction_id}", transaction_id=transaction_id, ttl=ttl
        )
        return text

    def queue(self, txn: str, **changes: Any) -> dict[str, Any]:
        body = {**SEED_BODY, "metadata": {**SEED_BODY["metadata"]}}
        body["metadata"].update(changes.pop("metadata", {}))
        body.update(changes)
        response = self.client("operator").post(f"/api/payments/retry/{txn}", json=body)
        assert response.status_code == 201, response.text
        document: dict[str, Any] = response.json()
        return document


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def api_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgresql":
        url: str = request.getfixturevalue("pg_url")
        return url
    return f"sqlite:///{tmp_path / 'api.db'}"


MakeApi = Callable[..., Api]


@pytest.fixture
def make_api(api_url: str) -> Iterator[MakeApi]:
    made: list[Api] = []

    def make(**env: str) -> Api:
        settings = load_settings(
            env={
                "PAYRETRY_DATABASE_URL": api_url,
                "PAYRETRY_HTTP_TOKEN_SECRET": SECRET,
                "PAYRETRY_SIMULATED_SUCCESS_RATE": "1",
                "PAYRETRY_HTTP_EVENTS_POLL": "50ms",
                "PAYRETRY_RUNNER_GRACE_PERIOD": "5s",
                **env,
            }
        )
        clock = Clock()
        wiring = Wiring(settings, clock=clock)
        tokens = {}
        for role in (Role.VIEWER, Role.OPERATOR, Role.ADMIN):
            tokens[role.value], _ = wiring.tokens().create(role, f"test-{role.value}")
        server = ApiServer(wiring, "127.0.0.1", 0).start()
        api = Api(server.url, wiring, server, clock, tokens)
        made.append(api)
        return api

    yield make
    for api in made:
        for client in api.clients:
            client.close()
        api.server.stop()
        api.wiring.close()


@pytest.fixture
def api(make_api: MakeApi) -> Api:
    return make_api()
