"""Every route and its status codes, on SQLite and PostgreSQL; the JSON shapes are the CLI's."""

from __future__ import annotations

import json
from typing import Any

from typer.testing import CliRunner

from payretry.cli import app as cli
from tests.api.conftest import SEED_BODY, Api, MakeApi


def cli_json(api: Api, *args: str) -> Any:
    result = CliRunner().invoke(cli, ["--db", api.wiring.settings.database.url, *args])
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def error(response: Any, status: int, kind: str, field: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    document = response.json()
    assert set(document) == {"error"} and set(document["error"]) == {"kind", "message", "field"}
    assert document["error"]["kind"] == kind, document
    if field is not None:
        assert document["error"]["field"] == field, document
    found: dict[str, Any] = document["error"]
    return found


def test_queue_with_the_seed_body_then_status_is_the_cli_shape(api: Api) -> None:
    operator = api.client("operator")
    first = operator.post("/api/payments/retry/txn_123", json=SEED_BODY)
    assert first.status_code == 201, first.text
    job = first.json()
    assert job["created"] is True
    assert (job["amount_minor"], job["currency"], job["user_id"]) == (9999, "USD", "user_456")
    assert job["error_message"] == "Payment processor timeout"
    assert job["metadata"] == {"orderId": "A-17"}
    assert job["next_retry_at"].endswith("Z") and job["attempts_remaining"] == 3
    again = operator.post("/api/payments/retry/txn_123", json=SEED_BODY)
    assert again.status_code == 200 and again.json()["created"] is False
    assert again.json()["job_id"] == job["job_id"]
    status = api.client("viewer").get("/api/payments/retry/txn_123")
    assert status.status_code == 200
    assert status.json() == cli_json(api, "status", "txn_123", "--json")


def test_queue_with_the_cli_fields(api: Api) -> None:
    body = {
        "error_code": "card_declined",
        "decline_code": "insufficient_funds",
        "user_id": "usr_9",
        "amount": "1000",
        "currency": "JPY",
        "window": "72h",
        "metadata": {"order": "B-2"},
    }
    response = api.client("operator").post("/api/payments/retry/txn_cli", json=body)
    assert response.status_code == 201, response.text
    job = response.json()
    assert (job["amount_minor"], job["policy_row"]) == (1000, "insufficient_funds")
    assert job["expires_at"] is not None and job["metadata"] == {"order": "B-2"}


def test_queue_refusals_and_invalid_input_name_the_field(api: Api) -> None:
    operator = api.client("operator")
    api.queue("txn_a")
    changed = {**SEED_BODY, "metadata": {**SEED_BODY["metadata"], "amount": 5}}
    error(operator.post("/api/payments/retry/txn_a", json=changed), 409, "refused")
    never = {**SEED_BODY, "error": {"code": "card_declined", "decline_code": "stolen_card"}}
    error(operator.post("/api/payments/retry/txn_s", json=never), 409, "refused")
    cents = {**SEED_BODY, "metadata": {**SEED_BODY["metadata"], "amount": "1.234"}}
    error(
        operator.post("/api/payments/retry/txn_b", json=cents),
        422,
        "invalid_input",
        "metadata.amount",
    )
    error(
        operator.post("/api/payments/retry/txn_b", json={**SEED_BODY, "colour": "red"}),
        422,
        "invalid_input",
        "colour",
    )
    bad_error = {**SEED_BODY, "error": {"code": "x", "reason": "?"}}
    error(
        operator.post("/api/payments/retry/txn_b", json=bad_error),
        422,
        "invalid_input",
        "error.reason",
    )
    card = {**SEED_BODY, "metadata": {**SEED_BODY["metadata"], "note": "4242 4242 4242 4242"}}
    error(
        operator.post("/api/payments/retry/txn_b", json=card), 422, "invalid_input", "metadata.note"
    )
    error(operator.post("/api/payments/retry/txn_b", content=b"{not json"), 422, "invalid_input")
    twice = {**SEED_BODY, "user_id": "someone_else"}
    error(
        operator.post("/api/payments/retry/txn_b", json=twice),
        422,
        "invalid_input",
        "metadata.userId",
    )
    assert (
        api.client("viewer").get("/api/payments/retry/txn_b").status_code == 404
    )  # nothing stored


def test_status_explain_cancel(api: Api) -> None:
    api.queue("txn_e")
    viewer, operator = api.client("viewer"), api.client("operator")
    told = viewer.get("/api/payments/retry/txn_e", params={"explain": "true"}).json()
    assert told["story"][0]["kind"] == "queued" and "txn_e" in told["story"][0]["text"]
    assert [e["type"] for e in told["events"]] == ["retry_scheduled", "user_notification"]
    plain = viewer.get("/api/payments/retry/txn_e").json()
    assert "story" not in plain
    error(viewer.get("/api/payments/retry/nope"), 404, "not_found")
    cancelled = operator.delete("/api/payments/retry/txn_e")
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
    error(operator.delete("/api/payments/retry/txn_e"), 409, "refused")
    error(operator.delete("/api/payments/retry/nope"), 404, "not_found")


def test_a_users_jobs_a_page_at_a_time(api: Api) -> None:
    for n in range(3):
        api.queue(f"txn_u{n}", metadata={"userId": "usr_pages"})
    viewer = api.client("viewer")
    first = viewer.get("/api/payments/retry/user/usr_pages", params={"limit": 2}).json()
    assert [j["transaction_id"] for j in first["jobs"]] == ["txn_u2", "txn_u1"]
    assert first["next_cursor"]
    rest = viewer.get(
        "/api/payments/retry/user/usr_pages", params={"limit": 2, "cursor": first["next_cursor"]}
    ).json()
    assert [j["transaction_id"] for j in rest["jobs"]] == ["txn_u0"] and rest["next_cursor"] is None
    none = viewer.get("/api/payments/retry/user/usr_nobody").json()
    assert none == {"jobs": [], "next_cursor": None}
    error(
        viewer.get("/api/payments/retry/user/usr_pages", params={"cursor": "x"}),
        422,
        "invalid_input",
        "cursor",
    )
    error(
        viewer.get("/api/payments/retry/user/usr_pages", params={"limit": 0}),
        422,
        "invalid_input",
        "limit",
    )


def test_stats_carry_the_seed_names_and_the_cli_fields(api: Api) -> None:
    api.queue("txn_1")
    api.queue("txn_2", metadata={"amount": "10.00", "currency": "EUR"})
    stats = api.client("viewer").get("/api/payments/retry/stats").json()
    assert stats["totalJobs"] == 2 and stats["pendingJobs"] == 2
    assert stats["totalAmount"] == {"EUR": 1000, "USD": 9999}
    assert stats["jobsByErrorCode"] == {"processing_error": 2}
    cli_stats = cli_json(api, "stats", "--json")
    assert set(stats) - {"totalJobs", "pendingJobs", "totalAmount", "jobsByErrorCode"} == set(
        cli_stats
    )
    assert stats["by_state"] == cli_stats["by_state"]


def test_retry_now_and_checkout_status(api: Api) -> None:
    api.queue("txn_r", metadata={"simulate": "processing_error,succeeded"})
    operator = api.client("operator")
    done = operator.post("/payments/retry/txn_r")
    assert done.status_code == 200, done.text
    result = done.json()
    assert result["result"]["outcome"] == "rescheduled" and result["job"]["attempt_count"] == 1
    status = api.client("viewer").get("/payments/checkout/txn_r/status").json()
    assert status["retryAttemptsRemaining"] == 2 and status["retryAvailable"] is True
    assert status["failureReason"] == "The payment could not be processed."
    assert status["state"] == "scheduled"
    throttled = operator.post("/payments/retry/txn_r")
    error(throttled, 429, "throttled")
    assert 55 <= int(throttled.headers["Retry-After"]) <= 60
    error(operator.post("/payments/retry/nope"), 404, "not_found")
    error(api.client("viewer").get("/payments/checkout/nope/status"), 404, "not_found")
    api.clock.advance(seconds=61)
    assert operator.post("/payments/retry/txn_r").json()["result"]["outcome"] == "succeeded"
    error(operator.post("/payments/retry/txn_r"), 409, "refused")  # succeeded: final
    final = api.client("viewer").get("/payments/checkout/txn_r/status").json()
    assert final["state"] == "succeeded" and final["failureReason"] is None


def test_health_readiness_metrics_docs(api: Api) -> None:
    anyone = api.client(None)
    health = anyone.get("/healthz")
    assert health.status_code == 200 and health.json()["database"] == "ok"
    assert anyone.get("/readyz").json() == {"ok": True, "database": "ok", "draining": False}
    metrics = anyone.get("/metrics")
    assert metrics.status_code == 200 and "retry_queue_size" in metrics.text
    assert anyone.get("/openapi.json").json()["info"]["title"] == "payretry"
    assert anyone.get("/docs").status_code == 200
    error(anyone.get("/nowhere"), 404, "not_found")
    error(anyone.put("/healthz"), 405, "method_not_allowed")


def test_an_overdue_job_makes_healthz_503(api: Api) -> None:
    api.queue("txn_late", error={"code": "network_error"})  # due at once
    api.clock.advance(minutes=20)  # cron mode, nothing ran it: older than 15 minutes
    health = api.client(None).get("/healthz")
    assert health.status_code == 503 and health.json()["ok"] is False


def test_bodies_are_bounded_and_cors_is_off(api: Api) -> None:
    operator = api.client("operator")
    big = {**SEED_BODY, "error": {"code": "processing_error", "message": "x" * 70_000}}
    error(operator.post("/api/payments/retry/txn_big", json=big), 413, "too_large")

    def chunks() -> Any:
        for _ in range(70):
            yield b"x" * 1024

    error(operator.post("/api/payments/retry/txn_big", content=chunks()), 413, "too_large")
    preflight = operator.options(
        "/api/payments/retry/txn_1",
        headers={"Origin": "https://shop.example", "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in preflight.headers


def test_cors_when_configured(make_api: MakeApi) -> None:
    api = make_api(PAYRETRY_HTTP_CORS_ORIGINS="https://shop.example")
    preflight = api.client(None).options(
        "/api/payments/retry/txn_1",
        headers={"Origin": "https://shop.example", "Access-Control-Request-Method": "POST"},
    )
    assert preflight.headers["access-control-allow-origin"] == "https://shop.example"
    other = api.client(None).options(
        "/api/payments/retry/txn_1",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in other.headers
