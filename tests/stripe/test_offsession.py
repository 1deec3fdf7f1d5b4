"""Off-session retries through the real SDK against the Stripe emulator, over real HTTP, with
payretry's runner and a real SQLite store; the clock moves forward instead of waiting."""

from __future__ import annotations

import threading
import time
from dataclasses import replace

import pytest
from stripe.params import PaymentIntentCreateParams

from payretry.domain.models import AttemptOutcome, JobState
from payretry.errors import ProcessorError
from tests.stripe.conftest import Clock, Harness
from tests.stripe.emulator import Emulator, Fault


def test_a_job_walks_its_schedule_through_declines_to_success(
    harness: Harness, emulator: Emulator, clock: Clock
) -> None:
    emulator.card("pm_card", "decline:try_again_later", "decline:issuer_not_available", "succeeded")
    harness.queue(
        "t-walk", error_code="processing_error", decline_code=None, metadata={"order": "A-17"}
    )
    assert harness.run()["processed"] == 0  # processing_error: attempt 1 after 1 minute
    clock.advance(minutes=1, seconds=1)
    assert harness.run()["rescheduled"] == 1
    job = harness.job("t-walk")
    assert job.state is JobState.SCHEDULED and job.attempt_count == 1
    assert job.policy_code == "try_again_later"  # its row: 6 h before attempt 2
    clock.advance(hours=5)
    assert harness.run()["processed"] == 0  # not yet
    clock.advance(hours=1, seconds=1)
    report = harness.run()
    assert report["rescheduled"] == 1, report
    job = harness.job("t-walk")
    assert job.attempts[-1].decline_code == "issuer_not_available"
    assert job.policy_code == "issuer_not_available"  # 6 h before attempt 3
    clock.advance(hours=6, seconds=1)
    assert harness.run()["succeeded"] == 1
    job = harness.job("t-walk")
    assert job.state is JobState.SUCCEEDED
    assert [a.outcome for a in job.attempts] == [AttemptOutcome.FAILED] * 2 + [
        AttemptOutcome.SUCCEEDED
    ]
    keys = [a.idempotency_key for a in job.attempts]
    assert [emulator.state.charges[k] for k in keys] == [1, 1, 1]  # one charge per key
    (paid,) = emulator.succeeded("t-walk")
    assert job.attempts[-1].reference == paid["id"]
    assert paid["metadata"] == {
        "order": "A-17",
        "payretry_transaction_id": "t-walk",
        "payretry_attempt": "3",
        "payretry_attempt_key": keys[-1],
    }
    assert paid["amount"] == 4999 and paid["currency"] == "usd"


@pytest.mark.parametrize(
    ("outcome", "decline_code"),
    [
        ("decline:stolen_card", "stolen_card"),
        ("decline:insufficient_funds:do_not_try_again", "do_not_try_again"),  # advice wins
        ("decline:generic_decline::03", "do_not_try_again"),  # the network's advice too
        ("decline:do_not_honor:confirm_card_data", "confirm_card_data"),
        ("error:expired_card", None),
    ],
)
def test_a_hard_decline_ends_the_job(
    harness: Harness, emulator: Emulator, clock: Clock, outcome: str, decline_code: str | None
) -> None:
    emulator.card("pm_card", outcome, "succeeded")
    harness.queue("t-hard", error_code="processing_error", decline_code=None)
    clock.advance(minutes=2)
    report = harness.run()
    assert report["failed"] == 1, report
    job = harness.job("t-hard")
    assert job.state is JobState.FAILED
    assert job.attempts[0].decline_code == decline_code
    assert job.attempts[0].reference and job.attempts[0].reference.startswith("pi_")
    assert "never retried" in (job.reason or "")
    if decline_code == "confirm_card_data":
        assert "customer notified: your card was declined; please update" in (job.reason or "")
    assert not emulator.succeeded()


def test_try_again_later_advice_overrides_a_hard_decline_code(
    harness: Harness, emulator: Emulator, clock: Clock
) -> None:
    emulator.card("pm_card", "decline:stolen_card:try_again_later")
    harness.queue("t-advice", error_code="processing_error", decline_code=None)
    clock.advance(minutes=2)
    assert harness.run()["rescheduled"] == 1
    assert harness.job("t-advice").policy_code == "try_again_later"


def test_authentication_required_is_not_retried_and_the_customer_is_told(
    harness: Harness, emulator: Emulator, clock: Clock
) -> None:
    emulator.card("pm_card", "auth")
    harness.queue("t-3ds", error_code="processing_error", decline_code=None)
    clock.advance(minutes=2)
    assert harness.run()["failed"] == 1
    job = harness.job("t-3ds")
    assert job.attempts[0].decline_code == "authentication_required"
    assert "customer notified: your bank asks you to confirm this payment" in (job.reason or "")


def test_500_then_success_charges_once(harness: Harness, emulator: Emulator, clock: Clock) -> None:
    emulator.fault("POST /v1/payment_intents", Fault(status=500))
    harness.queue("t-500", error_code="service_unavailable", decline_code=None)
    clock.advance(minutes=1, seconds=1)
    assert harness.run()["rescheduled"] == 1
    job = harness.job("t-500")
    assert job.attempts[0].error_code == "service_unavailable"
    clock.advance(minutes=5, seconds=1)
    assert harness.run()["succeeded"] == 1
    assert len(emulator.succeeded("t-500")) == 1
    assert sum(emulator.state.charges.values()) == 1  # the 500 came before any charge
    # Before the new key, the first attempt's real state was looked up.
    assert emulator.requests("GET", "/v1/payment_intents")


def test_a_500_after_the_charge_is_found_and_not_charged_again(
    harness: Harness, emulator: Emulator, clock: Clock
) -> None:
    emulator.fault("POST /v1/payment_intents", Fault(status=500, after_charge=True))
    harness.queue("t-500b", error_code="service_unavailable", decline_code=None)
    clock.advance(minutes=1, seconds=1)
    assert harness.run()["rescheduled"] == 1  # Stripe said 500: not proof of failure
    clock.advance(minutes=5, seconds=1)
    assert harness.run()["succeeded"] == 1
    job = harness.job("t-500b")
    (paid,) = emulator.succeeded("t-500b")
    assert job.attempts[-1].reference == paid["id"]
    assert "despite Stripe's 5xx" in (job.attempts[-1].message or "")
    assert sum(emulator.state.charges.values()) == 1
    assert emulator.state.charges[job.attempts[-1].idempotency_key] == 0  # no new key sent


def test_a_429_storm_slows_the_run_and_loses_no_job(
    harness: Harness, emulator: Emulator, clock: Clock
) -> None:
    storm = [Fault(status=429, retry_after=0.4) for _ in range(3)]
    emulator.fault("POST /v1/payment_intents", *storm)
    for n in range(6):  # each its own card: no card-network limit holds any of them
        harness.queue(
            f"t-429-{n}", error_code="network_error", decline_code=None, payment_method=f"pm_{n}"
        )
    report = harness.run()
    assert report["succeeded"] == 3 and report["rescheduled"] == 3, report
    creates = emulator.requests("POST", "/v1/payment_intents")
    gaps = [b.at - a.at for a, b in zip(creates, creates[1:], strict=False)]
    assert [r.status for r in creates] == [429, 429, 429, 200, 200, 200]
    assert all(gap >= 0.38 for gap in gaps[:3]), gaps  # held back after every 429
    jobs = [harness.job(f"t-429-{n}") for n in range(6)]
    assert sorted(j.state.value for j in jobs) == ["scheduled"] * 3 + ["succeeded"] * 3
    limited = [j for j in jobs if j.state is JobState.SCHEDULED]
    assert all(j.policy_code == "rate_limit_exceeded" for j in limited)
    assert harness.runner.limiter is not None  # the run gained a limiter when Stripe asked


def test_a_bad_key_aborts_the_run_and_counts_no_attempt(
    store: object, emulator: Emulator, clock: Clock
) -> None:
    from payretry.store.sql import SqlStore

    assert isinstance(store, SqlStore)
    bad = Harness(store, emulator.url, clock, STRIPE_API_KEY="sk_test_wrong_key_123456")
    bad.queue("t-key-1", error_code="network_error", decline_code=None)
    bad.queue("t-key-2", error_code="network_error", decline_code=None)
    with pytest.raises(ProcessorError) as caught:
        bad.run()
    assert "Stripe refused the API key" in str(caught.value)
    assert "wrong_key" not in str(caught.value)  # Stripe's masked echo is redacted too
    for txn in ("t-key-1", "t-key-2"):
        job = bad.job(txn)
        assert job.state is JobState.SCHEDULED and job.attempt_count == 0 and not job.attempts


def test_a_timeout_leaves_the_attempt_in_doubt_and_the_same_key_settles_it(
    store: object, emulator: Emulator, clock: Clock
) -> None:
    from payretry.store.sql import SqlStore

    assert isinstance(store, SqlStore)
    slow = Harness(store, emulator.url, clock, PAYRETRY_STRIPE_READ_TIMEOUT="0.5s")
    emulator.fault("POST /v1/payment_intents", Fault(delay=1.5))
    slow.queue("t-slow", error_code="network_error", decline_code=None)
    report = slow.run()
    assert report["in_doubt"] == 1 and report["processed"] == 0, report
    job = slow.job("t-slow")
    assert job.state is JobState.RUNNING and job.attempts[0].outcome is AttemptOutcome.PENDING
    key = job.attempts[0].idempotency_key
    time.sleep(1.2)  # let the held answer go out
    clock.advance(seconds=31)  # the lease lapses; the next run rescues the job
    report = slow.run()
    assert report["rescued"] == 1 and report["succeeded"] == 1, report
    job = slow.job("t-slow")
    assert [a.idempotency_key for a in job.attempts] == [key]  # never a second key
    assert emulator.state.charges[key] == 1
    assert [r.replayed for r in emulator.requests("POST", "/v1/payment_intents")] == [False, True]


def test_an_unrecorded_attempt_older_than_24h_is_reconciled_not_charged_again(
    harness: Harness, emulator: Emulator, clock: Clock
) -> None:
    harness.queue("t-old", error_code="network_error", decline_code=None)
    (claimed,) = harness.store.claim(clock(), 1, harness.runner.lease_for)
    job = harness.store.get(claimed.job.id)
    assert job is not None
    # The process sends the charge, then dies before writing the outcome.
    harness.processor.attempt(replace(claimed, job=job).request())
    assert len(emulator.succeeded("t-old")) == 1
    clock.advance(hours=25)
    emulator.forget_keys()  # Stripe pruned the key: a re-send would charge again
    report = harness.run()
    assert report["rescued"] == 1 and report["succeeded"] == 1, report
    assert len(emulator.succeeded("t-old")) == 1
    assert emulator.state.charges[claimed.idempotency_key] == 1
    assert emulator.requests("GET", "/v1/payment_intents/search")


def test_reconfirming_the_jobs_own_payment_intent(
    harness: Harness, emulator: Emulator, clock: Clock
) -> None:
    with emulator.lock:
        intent = emulator._intent(
            {"amount": 4999, "currency": "usd", "customer": "cus_1", "payment_method": "pm_card"}
        )
        intent["status"] = "requires_payment_method"
    emulator.card("pm_card", "succeeded")
    harness.queue(
        "t-pi", error_code="network_error", decline_code=None, payment_intent=intent["id"]
    )
    assert harness.run()["succeeded"] == 1
    assert intent["status"] == "succeeded"
    assert intent["metadata"]["payretry_transaction_id"] == "t-pi"
    harness.queue(
        "t-pi2", error_code="network_error", decline_code=None, payment_intent=intent["id"]
    )
    assert harness.run()["succeeded"] == 1  # already paid: read, not confirmed again
    assert sum(emulator.state.charges.values()) == 1


def test_emulator_idempotency_semantics(emulator: Emulator) -> None:
    import stripe

    from tests.stripe.emulator import KEY

    client = stripe.StripeClient(KEY, base_addresses={"api": emulator.url})
    params: PaymentIntentCreateParams = {
        "amount": 100,
        "currency": "usd",
        "customer": "c",
        "payment_method": "pm_x",
        "confirm": True,
    }
    first = client.v1.payment_intents.create(params, {"idempotency_key": "k1"})
    again = client.v1.payment_intents.create(params, {"idempotency_key": "k1"})
    assert first.id == again.id and emulator.state.charges["k1"] == 1
    with pytest.raises(stripe.IdempotencyError):
        client.v1.payment_intents.create({**params, "amount": 200}, {"idempotency_key": "k1"})
    emulator.card("pm_y", "decline:insufficient_funds")
    for _ in range(2):  # the stored error is replayed, not a second charge
        with pytest.raises(stripe.CardError):
            client.v1.payment_intents.create(
                {**params, "payment_method": "pm_y"}, {"idempotency_key": "k2"}
            )
    assert emulator.state.charges["k2"] == 1
    hold = threading.Event()
    emulator.fault("POST /v1/payment_intents", Fault(hold=hold))
    done: list[str] = []
    first_call = threading.Thread(
        target=lambda: done.append(
            client.v1.payment_intents.create(params, {"idempotency_key": "k3"}).id
        )
    )
    first_call.start()
    deadline = time.monotonic() + 5
    while not emulator.state.charges["k3"] and time.monotonic() < deadline:
        time.sleep(0.01)
    with pytest.raises(stripe.APIError) as caught:
        client.v1.payment_intents.create(params, {"idempotency_key": "k3"})
    assert caught.value.http_status == 409
    hold.set()
    first_call.join(5)
    assert done and emulator.state.charges["k3"] == 1
