"""Against localstripe, a third-party fake Stripe, started on a free loopback port for this module:
a payment that succeeds, a card that declines (4000000000000341) and a card that requires
authentication (4000002500003155), each through payretry's runner and the real SDK."""

from __future__ import annotations

import pytest
import stripe

from payretry.domain.models import JobState
from payretry.store.sql import SqlStore
from tests.stripe.conftest import Clock, Harness

pytestmark = pytest.mark.slow  # a server process of its own

KEY = "sk_test_localstripe"


def _saved_card(base: str, number: str) -> tuple[str, str]:
    client = stripe.StripeClient(KEY, base_addresses={"api": base})
    customer = client.v1.customers.create()
    method = client.v1.payment_methods.create(
        {
            "type": "card",
            "card": {"number": number, "exp_month": 12, "exp_year": 2034, "cvc": "123"},
        }
    )
    client.v1.payment_methods.attach(method.id, {"customer": customer.id})
    return customer.id, method.id


@pytest.mark.parametrize(
    ("number", "state", "decline_code"),
    [
        ("4242424242424242", JobState.SUCCEEDED, None),
        ("4000000000000341", JobState.FAILED, None),  # attaches, then every charge declines
        ("4000002500003155", JobState.FAILED, "authentication_required"),
    ],
    ids=["succeeds", "declines", "needs-authentication"],
)
def test_off_session_retry_against_localstripe(
    localstripe: str,
    store: SqlStore,
    clock: Clock,
    number: str,
    state: JobState,
    decline_code: str | None,
) -> None:
    harness = Harness(
        store,
        localstripe,
        clock,
        STRIPE_API_KEY=KEY,
        PAYRETRY_STRIPE_PAYMENT_METHOD_TYPES="card",  # localstripe predates automatic methods
    )
    customer, method = _saved_card(localstripe, number)
    harness.queue(
        "t-ls",
        error_code="network_error",
        decline_code=None,
        customer=customer,
        payment_method=method,
    )
    report = harness.run()
    assert report["processed"] == 1, report
    job = harness.job("t-ls")
    assert job.state is state, job.reason
    attempt = job.attempts[0]
    assert attempt.decline_code == decline_code
    if state is JobState.SUCCEEDED:
        assert attempt.reference and attempt.reference.startswith("pi_")
        client = stripe.StripeClient(KEY, base_addresses={"api": localstripe})
        intent = client.v1.payment_intents.retrieve(attempt.reference)
        assert intent.status == "succeeded" and intent.amount == 4999
        assert intent.metadata["payretry_transaction_id"] == "t-ls"
        assert intent.metadata["payretry_attempt"] == "1"
    else:
        assert attempt.error_code in ("card_declined", "authentication_required")
        assert "never retried" in (job.reason or "")
