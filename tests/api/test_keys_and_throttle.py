"""Idempotency-Key: replay, mismatch, conflict while running, expiry; the retry throttle per
transaction and per user, with the clock passed in, shared with `payretry retry`."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from typer.testing import CliRunner

from payretry.cli import app as cli
from tests.api.conftest import SEED_BODY, MakeApi


def test_a_key_replays_the_first_answer_and_refuses_another_request(make_api: MakeApi) -> None:
    api = make_api()
    operator = api.client("operator", **{"Idempotency-Key": "order-17-queue"})
    first = operator.post("/api/payments/retry/txn_k", json=SEED_BODY)
    assert first.status_code == 201 and "idempotent-replayed" not in first.headers
    again = operator.post("/api/payments/retry/txn_k", json=SEED_BODY)
    assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
    assert again.content == first.content
    other = {**SEED_BODY, "metadata": {**SEED_BODY["metadata"], "amount": 5}}
    mismatch = operator.post("/api/payments/retry/txn_k", json=other)
    assert mismatch.status_code == 422
    assert mismatch.json()["error"] == {
        "kind": "idempotency_mismatch",
        "message": mismatch.json()["error"]["message"],
        "field": "Idempotency-Key",
    }
    elsewhere = operator.post("/api/payments/retry/txn_k2", json=SEED_BODY)
    assert elsewhere.status_code == 422  # same key, another path
    # Keys are per token: another client's identical key is its own.
    other_client = api.client("admin", **{"Idempotency-Key": "order-17-queue"})
    assert other_client.post("/api/payments/retry/txn_k", json=SEED_BODY).status_code == 200
    # After 24 hours the key is free again: the request runs (the job exists: 200).
    api.clock.advance(hours=25)
    later = operator.post("/api/payments/retry/txn_k", json=SEED_BODY)
    assert later.status_code == 200 and "idempotent-replayed" not in later.headers
    bad = api.client("operator", **{"Idempotency-Key": "has space"})
    response = bad.post("/api/payments/retry/txn_k", json=SEED_BODY)
    assert response.status_code == 422 and response.json()["error"]["field"] == "Idempotency-Key"


def test_a_key_whose_first_request_still_runs_is_409(make_api: MakeApi) -> None:
    api = make_api(PAYRETRY_SIMULATED_LATENCY="1s")
    api.queue("txn_slow")
    operator = api.client("operator", **{"Idempotency-Key": "retry-slow-1"})
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(operator.post, "/payments/retry/txn_slow")
        time.sleep(0.3)  # the first request is under way before the second
        second = pool.submit(operator.post, "/payments/retry/txn_slow")
        answers = sorted([first.result(), second.result()], key=lambda r: r.status_code)
    assert [r.status_code for r in answers] == [200, 409]
    assert answers[1].json()["error"]["kind"] == "idempotency_in_progress"
    replay = operator.post("/payments/retry/txn_slow")
    assert replay.status_code == 200 and replay.content == answers[0].content
    job = api.client("viewer").get("/api/payments/retry/txn_slow").json()
    assert job["attempt_count"] == 1  # one attempt, whatever was sent


def test_a_throttled_answer_is_not_stored(make_api: MakeApi) -> None:
    api = make_api()
    api.queue("txn_t")
    operator = api.client("operator")
    assert operator.post("/payments/retry/txn_t").status_code == 200
    keyed = api.client("operator", **{"Idempotency-Key": "k-throttled"})
    assert keyed.post("/payments/retry/txn_t").status_code in (409, 429)
    api.clock.advance(seconds=61)
    # The 429 was not stored: the same key now runs (the job succeeded already: 409).
    assert keyed.post("/payments/retry/txn_t").status_code == 409


def test_the_throttle_per_transaction_and_per_user(make_api: MakeApi) -> None:
    api = make_api(PAYRETRY_THROTTLE_PER_USER="2", PAYRETRY_SIMULATED_SUCCESS_RATE="0")
    for txn in ("txn_1", "txn_2", "txn_3"):
        api.queue(txn, error={"code": "network_error"}, metadata={"simulate": "network_error"})
    operator = api.client("operator")
    assert operator.post("/payments/retry/txn_1").status_code == 200
    refused = operator.post("/payments/retry/txn_1")
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "60"
    assert "transaction txn_1" in refused.json()["error"]["message"]
    api.clock.advance(seconds=30)
    assert operator.post("/payments/retry/txn_1").headers["Retry-After"] == "30"
    assert operator.post("/payments/retry/txn_2").status_code == 200
    by_user = operator.post("/payments/retry/txn_3")  # the user's second allowed is spent
    assert by_user.status_code == 429 and "user user_456" in by_user.json()["error"]["message"]
    assert int(by_user.headers["Retry-After"]) == 3600 - 30
    api.clock.advance(minutes=59, seconds=31)
    assert operator.post("/payments/retry/txn_3").status_code == 200
    jobs = {
        t: api.client("viewer").get(f"/api/payments/retry/{t}").json()["attempt_count"]
        for t in ("txn_1", "txn_2", "txn_3")
    }
    assert jobs == {"txn_1": 1, "txn_2": 1, "txn_3": 1}  # throttled requests attempted nothing


def test_concurrent_retries_of_one_transaction_let_one_through(make_api: MakeApi) -> None:
    api = make_api(PAYRETRY_SIMULATED_SUCCESS_RATE="0")
    api.queue("txn_c", error={"code": "network_error"}, metadata={"simulate": "network_error"})
    operator = api.client("operator")
    with ThreadPoolExecutor(6) as pool:
        codes = sorted(
            r.status_code
            for r in pool.map(lambda _: operator.post("/payments/retry/txn_c"), range(6))
        )
    assert codes.count(200) == 1 and set(codes) <= {200, 409, 429}, codes


def test_payretry_retry_shares_the_throttle(make_api: MakeApi) -> None:
    api = make_api()
    api.queue("txn_cli", metadata={"simulate": "processing_error,succeeded"})
    assert api.client("operator").post("/payments/retry/txn_cli").status_code == 200
    result = CliRunner().invoke(
        cli, ["--db", api.wiring.settings.database.url, "retry", "txn_cli", "--json"]
    )
    assert result.exit_code == 3, result.stdout
    assert '"kind": "throttled"' in result.stdout


def test_a_request_timed_earlier_but_counted_later_stays_in_the_window(db_url: str) -> None:
    """Two concurrent retries read the clock, then take the counter in the other order: the
    second to commit has the earlier `now`. It must count in the window the first opened, not
    reset it (which let both through)."""
    from datetime import UTC, datetime, timedelta

    from payretry.domain.requests import Limit
    from payretry.store.access import SqlThrottle
    from payretry.store.sql import open_store

    store = open_store(db_url)
    try:
        throttle = SqlThrottle(store)
        limit = [Limit("txn:t1", 1, timedelta(seconds=60))]
        at = datetime(2026, 12, 1, 12, 0, 0, 5000, tzinfo=UTC)
        assert throttle.take(limit, at).allowed
        earlier = throttle.take(limit, at - timedelta(milliseconds=3))
        assert not earlier.allowed and earlier.bucket == "txn:t1"
        assert earlier.retry_after == timedelta(seconds=60, milliseconds=3)
        assert throttle.take(limit, at + timedelta(seconds=60)).allowed  # a new window
    finally:
        store.close()
