"""DELETE /api/payments/retry/{id} of a job waiting on the customer: its Checkout Session is
expired at Stripe (the emulator, through the real SDK) first; already paid -> 409 naming why,
and the job succeeds; Stripe unreachable -> 502, nothing changes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from payretry.domain.models import JobState, NewJob, ProcessorRefs
from payretry.domain.money import Money
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


def waiting(api: Api, emulator: Emulator, txn: str) -> str:
    request = NewJob(
        transaction_id=txn,
        user_id="user_1",
        money=Money(2500, "USD"),
        error_code="network_error",
        decline_code=None,
        error_message=None,
        refs=ProcessorRefs(None, None, None, emulator.session({})),
        metadata={},
        expires_at=api.clock() + timedelta(hours=3),
        priority=None,
    )
    api.wiring.operations().queue(request, api.clock())
    assert api.wiring.runner().run_due().as_dict()["awaiting_payer"] == 1
    job = api.wiring.store.find(txn)
    assert job is not None and job.action is not None
    return job.action.ref


def test_delete_expires_the_session_then_cancels(stripe_api: Api, emulator: Emulator) -> None:
    session = waiting(stripe_api, emulator, "t-a")
    response = stripe_api.client("operator").delete("/api/payments/retry/t-a")
    assert response.status_code == 200, response.text
    assert response.json()["state"] == "cancelled"
    assert emulator.state.sessions[session]["status"] == "expired"


def test_delete_of_a_paid_session_is_409_and_the_job_succeeds(
    stripe_api: Api, emulator: Emulator
) -> None:
    session = waiting(stripe_api, emulator, "t-b")
    intent = emulator.complete(session)
    response = stripe_api.client("operator").delete("/api/payments/retry/t-b")
    assert response.status_code == 409, response.text
    error = response.json()["error"]
    assert error["kind"] == "refused" and "already paid" in error["message"]
    assert intent in error["message"]
    job = stripe_api.client("viewer").get("/api/payments/retry/t-b").json()
    assert job["state"] == "succeeded"


def test_delete_while_stripe_fails_is_502_and_nothing_changes(
    stripe_api: Api, emulator: Emulator
) -> None:
    session = waiting(stripe_api, emulator, "t-c")
    emulator.fault(f"POST /v1/checkout/sessions/{session}/expire", Fault(status=500))
    response = stripe_api.client("operator").delete("/api/payments/retry/t-c")
    assert response.status_code == 502, response.text
    assert "nothing was cancelled" in response.json()["error"]["message"]
    job = stripe_api.wiring.store.find("t-c")
    assert job is not None and job.state is JobState.AWAITING_PAYER
    assert emulator.state.sessions[session]["status"] == "open"
