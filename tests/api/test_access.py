"""Roles: no token 401, the wrong role 403, each role what it may; customer tokens act on their
one transaction until they expire; tokens over HTTP and on the command line."""

from __future__ import annotations

import json
from typing import Any

import pytest
from typer.testing import CliRunner

from payretry.cli import app as cli
from payretry.domain.access import Role
from payretry.store.access import SqlTokens
from tests.api.conftest import SEED_BODY, Api

PROCESS = {
    "transactionId": "txn_p",
    "paymentRequest": {
        "userId": "u1",
        "amount": 10,
        "currency": "USD",
        "customerId": "cus_1",
        "paymentMethodId": "pm_1",
    },
}
# (method, path, body, the least role that may)
ROUTES: list[tuple[str, str, Any, str]] = [
    ("GET", "/api/payments/retry/txn_q", None, "viewer"),
    ("GET", "/api/payments/retry/user/user_456", None, "viewer"),
    ("GET", "/api/payments/retry/stats", None, "viewer"),
    ("GET", "/payments/checkout/txn_q/status", None, "viewer"),
    ("POST", "/api/payments/retry/txn_new", SEED_BODY, "operator"),
    ("POST", "/payments/retry/txn_q", None, "operator"),
    ("POST", "/api/payments/process", PROCESS, "operator"),
    ("DELETE", "/api/payments/retry/txn_d", None, "operator"),
    ("POST", "/api/tokens/customer", {"transaction_id": "txn_q"}, "operator"),
    ("GET", "/api/tokens", None, "admin"),
    ("POST", "/api/tokens", {"role": "viewer", "name": "x"}, "admin"),
]
RANK = {"viewer": 1, "operator": 2, "admin": 3}


@pytest.mark.parametrize("role", [None, "garbage", "viewer", "operator", "admin"])
def test_every_route_for_every_role(api: Api, role: str | None) -> None:
    api.queue("txn_q")
    api.queue("txn_d")
    client = api.client(role) if role != "garbage" else api.client("prt_000000000000_" + "x" * 43)
    for method, path, body, least in ROUTES:
        response = client.request(method, path, json=body)
        if role in (None, "garbage"):
            assert response.status_code == 401, (method, path, response.text)
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
            assert response.json()["error"]["kind"] == "unauthorized"
        elif RANK[role] < RANK[least]:
            assert response.status_code == 403, (method, path, response.text)
            assert response.json()["error"]["kind"] == "forbidden"
        else:
            assert response.status_code in (200, 201), (method, path, response.text)


def test_a_customer_token_acts_on_its_own_transaction_only(api: Api) -> None:
    api.queue("txn_mine")
    api.queue("txn_other", metadata={"userId": "usr_other"})
    mine = api.client(api.customer("txn_mine"))
    assert mine.get("/api/payments/retry/txn_mine").status_code == 200
    assert mine.get("/payments/checkout/txn_mine/status").json()["retryAvailable"] is True
    assert mine.post("/payments/retry/txn_mine").status_code == 200
    for method, path in (
        ("GET", "/api/payments/retry/txn_other"),
        ("GET", "/payments/checkout/txn_other/status"),
        ("POST", "/payments/retry/txn_other"),
        ("GET", "/payments/checkout/not_a_txn/status"),
        ("POST", "/api/payments/retry/txn_mine"),
        ("DELETE", "/api/payments/retry/txn_mine"),
        ("GET", "/api/payments/retry/stats"),
        ("GET", "/api/tokens"),
    ):
        response = mine.request(method, path, json=SEED_BODY if method == "POST" else None)
        assert response.status_code == 403, (method, path, response.text)
    api.clock.advance(hours=2)  # its hour is over
    assert mine.get("/api/payments/retry/txn_mine").status_code == 401


def test_tokens_over_http_minted_listed_revoked(api: Api) -> None:
    admin = api.client("admin")
    made = admin.post("/api/tokens", json={"role": "viewer", "name": "dash"})
    assert made.status_code == 201
    token = made.json()
    assert token["token"].startswith("prt_") and token["role"] == "viewer"
    listed = admin.get("/api/tokens").json()["tokens"]
    assert token["id"] in {t["id"] for t in listed}
    assert all("token" not in t and "secret_hash" not in t for t in listed)
    dash = api.client(token["token"])
    assert dash.get("/api/payments/retry/stats").status_code == 200
    assert admin.delete(f"/api/tokens/{token['id']}").json()["revoked_at"] is not None
    assert dash.get("/api/payments/retry/stats").status_code == 401
    assert admin.delete("/api/tokens/nope").status_code == 404
    bad = admin.post("/api/tokens", json={"role": "root", "name": "x"})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "role"
    customer = api.client("operator").post(
        "/api/tokens/customer", json={"transaction_id": "txn_c", "ttl": "30m"}
    )
    assert customer.status_code == 201
    assert customer.json()["role"] == "customer" and customer.json()["expires_at"]


def test_the_hash_is_stored_never_the_token(api: Api) -> None:
    text, made = api.wiring.tokens().create(Role.VIEWER, "probe")
    stored = SqlTokens(api.wiring.store).token(made.id)
    assert stored is not None and text not in stored.secret_hash and len(stored.secret_hash) == 64
    wrong_key = api.wiring.tokens()
    wrong_key.key = b"another secret"
    assert wrong_key.authenticate(text) is None  # the hash is keyed
    assert api.wiring.tokens().authenticate(text) is not None


def run(api: Api, *args: str) -> Any:
    env = {"PAYRETRY_HTTP_TOKEN_SECRET": api.wiring.settings.http.token_secret or ""}
    return CliRunner().invoke(cli, ["--db", api.wiring.settings.database.url, *args], env=env)


def test_token_commands(api: Api) -> None:
    made = run(api, "token", "create", "--role", "operator", "--name", "checkout-svc")
    assert made.exit_code == 0, made.stderr
    text = made.stdout.strip()
    assert text.startswith("prt_") and "only its hash is kept" in made.stderr
    assert text not in made.stderr
    operator = api.client(text)
    assert operator.post("/api/payments/retry/txn_t", json=SEED_BODY).status_code == 201
    listed = json.loads(run(api, "token", "list", "--json").stdout)["tokens"]
    mine = next(t for t in listed if t["name"] == "checkout-svc")
    assert text not in json.dumps(listed)
    assert mine["role"] == "operator" and mine["revoked_at"] is None
    human = run(api, "token", "list")
    assert "checkout-svc" in human.stdout and text not in human.stdout
    customer = run(api, "token", "customer", "txn_t", "--ttl", "24h", "--json")
    assert customer.exit_code == 0
    document = json.loads(customer.stdout)
    assert document["transaction_id"] == "txn_t" and document["expires_at"]
    assert api.client(document["token"]).get("/api/payments/retry/txn_t").status_code == 200
    revoked = run(api, "token", "revoke", mine["id"])
    assert revoked.exit_code == 0
    assert operator.get("/api/payments/retry/txn_t").status_code == 401
    assert run(api, "token", "revoke", "nope").exit_code == 4
    assert run(api, "token", "create", "--role", "root", "--name", "x").exit_code == 2
    assert run(api, "token", "create", "--role", "customer", "--name", "x").exit_code == 2
    assert run(api, "token", "create", "--role", "viewer", "--name", "bad\nname").exit_code == 2
    assert run(api, "token", "customer", "txn_t", "--ttl", "soon").exit_code == 2
