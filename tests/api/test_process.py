"""POST /api/payments/process against the Stripe emulator with the real Stripe SDK: a success
charges once and queues nothing; a soft decline queues a job whose first retry follows its
policy row; a replay charges nothing more; an answer lost after the charge is re-sent under the
same key and charges once."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from payretry.domain.durations import parse_time
from tests.api.conftest import Api, MakeApi
from tests.stripe.conftest import stripe_env
from tests.stripe.emulator import Emulator, Fault


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    server = Emulator().start()
    yield server
    server.stop()


@pytest.fixture
def stripe_api(make_api: MakeApi, emulator: Emulator) -> Api:
    return make_api(PAYRETRY_PROCESSOR_NAME="stripe", **stripe_env(emulator.url))


def body(txn: str, pm: str, amount: Any = 49.9) -> dict[str, Any]:
    return {
        "transactionId": txn,
        "paymentRequest": {
            "userId": "user_7",
            "amount": amount,
            "currency": "EUR",
            "customerId": "cus_7",
            "paymentMethodId": pm,
            "description": "Premium subscription",
        },
    }


def charges(emulator: Emulator) -> int:
    return sum(emulator.state.charges.values())


def test_a_success_charges_once_and_queues_nothing(stripe_api: Api, emulator: Emulator) -> None:
    emulator.card("pm_ok", "succeeded")
    operator = stripe_api.client("operator", **{"Idempotency-Key": "pay-1"})
    first = operator.post("/api/payments/process", json=body("txn_ok", "pm_ok"))
    assert first.status_code == 200, first.text
    done = first.json()
    assert (done["success"], done["shouldRetry"], done["job"]) == (True, False, None)
    assert done["attempt"]["reference"].startswith("pi_")
    assert done["attempt"]["idempotency_key"].endswith(":0")
    (intent,) = emulator.succeeded()
    assert (intent["amount"], intent["currency"]) == (4990, "eur")
    assert intent["metadata"]["description"] == "Premium subscription"
    replay = operator.post("/api/payments/process", json=body("txn_ok", "pm_ok"))
    assert replay.headers["idempotent-replayed"] == "true" and replay.content == first.content
    fresh_key = stripe_api.client("operator", **{"Idempotency-Key": "pay-1-again"})
    again = fresh_key.post("/api/payments/process", json=body("txn_ok", "pm_ok"))
    assert again.json()["replayed"] is True and again.json()["success"] is True
    assert charges(emulator) == 1  # one charge, however often it was asked
    assert stripe_api.client("viewer").get("/api/payments/retry/txn_ok").status_code == 404
    other = fresh_key.post("/api/payments/process", json=body("txn_ok", "pm_ok", amount=50))
    assert other.status_code in (409, 422)  # another amount for a processed transaction


def test_a_soft_decline_queues_a_job_under_its_policy_row(
    stripe_api: Api, emulator: Emulator
) -> None:
    emulator.card("pm_poor", "decline:insufficient_funds", "succeeded")
    operator = stripe_api.client("operator")
    response = operator.post("/api/payments/process", json=body("txn_poor", "pm_poor"))
    assert response.status_code == 200, response.text
    done = response.json()
    assert (done["success"], done["shouldRetry"]) == (False, True)
    assert done["decision"]["policy_row"] == "insufficient_funds"
    job = done["job"]
    assert job["decline_code"] == "insufficient_funds" and job["max_attempts"] == 2
    finished = parse_time(done["attempt"]["finished_at"])
    assert parse_time(job["next_retry_at"]) == finished + timedelta(hours=24)
    assert charges(emulator) == 1
    # The job then retries as any other: its first retry sends a new key, attempt 1.
    stripe_api.clock.advance(hours=25)
    report = stripe_api.wiring.runner("stripe").run_due()
    assert report.counts["succeeded"] == 1
    after = stripe_api.client("viewer").get("/api/payments/retry/txn_poor").json()
    assert after["state"] == "succeeded" and after["job_id"] == job["job_id"]
    assert charges(emulator) == 2


def test_a_hard_decline_queues_nothing(stripe_api: Api, emulator: Emulator) -> None:
    emulator.card("pm_stolen", "decline:stolen_card")
    done = stripe_api.client("operator").post(
        "/api/payments/process", json=body("txn_stolen", "pm_stolen")
    )
    document = done.json()
    assert (document["success"], document["shouldRetry"], document["job"]) == (False, False, None)
    assert "never retried" in document["decision"]["reason"]


def test_an_answer_lost_after_the_charge_is_resent_with_the_same_key(
    stripe_api: Api, emulator: Emulator
) -> None:
    emulator.card("pm_slow", "succeeded")
    emulator.fault("POST /v1/payment_intents", Fault(delay=5))  # charged, then answered late
    operator = stripe_api.client("operator")
    lost = operator.post("/api/payments/process", json=body("txn_lost", "pm_slow"))
    assert lost.status_code == 502 and lost.json()["error"]["kind"] == "in_doubt"
    assert charges(emulator) == 1
    deadline = time.monotonic() + 15
    while True:  # while Stripe still runs the first request the same key is 409: in doubt
        resent = operator.post("/api/payments/process", json=body("txn_lost", "pm_slow"))
        if resent.status_code != 502 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert resent.status_code == 200 and resent.json()["success"] is True
    keys = {r.key for r in emulator.requests("POST", "/v1/payment_intents")}
    assert len(keys) == 1  # the same key every time, so Stripe replayed its first answer
    assert emulator.requests("POST", "/v1/payment_intents")[-1].replayed
    assert charges(emulator) == 1


def test_process_refuses_bad_input(stripe_api: Api) -> None:
    operator = stripe_api.client("operator")
    missing = operator.post("/api/payments/process", json={"paymentRequest": {}})
    assert missing.json()["error"]["field"] == "transactionId"
    nothing_to_charge = body("txn_x", "pm_x")
    del nothing_to_charge["paymentRequest"]["paymentMethodId"]
    refused = operator.post("/api/payments/process", json=nothing_to_charge)
    assert refused.status_code == 422
    assert refused.json()["error"]["field"] == "paymentRequest.paymentMethodId"
    bad = body("txn_x", "pm_x", amount="4.999")
    answer = operator.post("/api/payments/process", json=bad)
    assert answer.status_code == 422 and answer.json()["error"]["field"] == "paymentRequest.amount"
