"""Checkout mode: a recreated Checkout Session the customer completes; the job waits on them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from payretry.domain.models import AttemptOutcome, JobState
from payretry.processors.stripe_checkout import session_expiry
from tests.stripe.conftest import Clock, Harness
from tests.stripe.emulator import Emulator

ORIGINAL = {"cart": "c-991", "campaign": "spring", "payretry_attempt": "stale"}


def test_expiry_is_clamped_between_30_minutes_and_24_hours_and_to_the_window() -> None:
    sent = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
    assert session_expiry(sent, None) == sent + timedelta(hours=23, minutes=59)
    assert session_expiry(sent, sent + timedelta(hours=48)) == sent + timedelta(
        hours=23, minutes=59
    )
    assert session_expiry(sent, sent + timedelta(hours=2)) == sent + timedelta(hours=2)
    assert session_expiry(sent, sent + timedelta(minutes=30, seconds=30)) is None  # too short
    assert session_expiry(sent, sent + timedelta(minutes=40)) == sent + timedelta(minutes=40)


def _waiting(harness: Harness, emulator: Emulator, txn: str, window: timedelta) -> str:
    original = emulator.session(ORIGINAL)
    harness.queue(
        txn,
        error_code="network_error",  # attempt 1 at once
        decline_code=None,
        customer=None,
        payment_method=None,
        checkout_session=original,
        window=window,
        metadata={"order": txn},
    )
    report = harness.run()
    assert report["awaiting_payer"] == 1 and report["processed"] == 1, report
    return original


def test_a_checkout_session_is_created_with_preserved_metadata_then_completed(
    harness: Harness, emulator: Emulator, clock: Clock
) -> None:
    original = _waiting(harness, emulator, "t-co", timedelta(hours=2))
    job = harness.job("t-co")
    assert job.state is JobState.AWAITING_PAYER and job.action is not None
    session = emulator.state.sessions[job.action.ref]
    assert job.action.url == session["url"]
    assert session["metadata"] == {
        "cart": "c-991",
        "campaign": "spring",  # the original's metadata, kept
        "order": "t-co",
        "payretry_transaction_id": "t-co",
        "payretry_attempt": "1",  # only the retry metadata changes
        "payretry_attempt_key": job.attempts[0].idempotency_key,
        "payretry_original_session": original,
    }
    assert session["payment_intent_data"]["metadata"] == session["metadata"]
    assert session["amount_total"] == 4999 and session["currency"] == "usd"
    assert job.expires_at is not None
    assert session["expires_at"] == int(job.expires_at.replace(microsecond=0).timestamp())
    assert job.attempts[0].outcome is AttemptOutcome.AWAITING
    assert "customer notified: complete your payment of 49.99 USD at" in (job.reason or "")
    assert session["url"] in (job.reason or "")
    assert harness.run()["processed"] == 0  # still open: nothing changes, nothing claimed
    assert harness.job("t-co").state is JobState.AWAITING_PAYER
    emulator.complete(job.action.ref)
    report = harness.run()
    assert report["succeeded"] == 1, report
    job = harness.job("t-co")
    assert job.state is JobState.SUCCEEDED and job.action is None
    assert job.attempts[0].outcome is AttemptOutcome.SUCCEEDED
    assert job.attempts[0].reference == session["payment_intent"]
    assert job.attempt_count == 1


def test_an_expired_session_is_a_failed_attempt_and_the_next_retry_makes_a_new_one(
    harness: Harness, emulator: Emulator, clock: Clock
) -> None:
    _waiting(harness, emulator, "t-exp", timedelta(hours=3))
    first = harness.job("t-exp")
    assert first.action is not None
    emulator.expire(first.action.ref)
    report = harness.run()
    assert report["rescheduled"] == 1, report
    job = harness.job("t-exp")
    assert job.state is JobState.SCHEDULED and job.policy_code == "checkout_expired"
    assert job.attempts[0].error_code == "checkout_expired"
    clock.advance(minutes=5, seconds=1)  # seed 004: 1, 5, 15 minutes; 5 before attempt 2
    assert harness.run()["awaiting_payer"] == 1
    job = harness.job("t-exp")
    assert job.action is not None and job.action.ref != first.action.ref
    session = emulator.state.sessions[job.action.ref]
    assert session["metadata"]["payretry_attempt"] == "2"
    assert job.attempt_count == 2


def test_a_window_too_short_for_checkout_sends_nothing(
    harness: Harness, emulator: Emulator, clock: Clock
) -> None:
    original = emulator.session({})
    harness.queue(
        "t-short",
        error_code="network_error",
        decline_code=None,
        customer=None,
        payment_method=None,
        checkout_session=original,
        window=timedelta(minutes=20),
    )
    report = harness.run()
    assert report["processed"] == 1 and report["awaiting_payer"] == 0, report
    job = harness.job("t-short")
    assert job.attempts[0].error_code == "checkout_window_closing"
    assert not emulator.requests("POST", "/v1/checkout/sessions")


def test_authentication_required_falls_back_to_checkout_when_enabled(
    store: object, emulator: Emulator, clock: Clock
) -> None:
    from payretry.store.sql import SqlStore

    assert isinstance(store, SqlStore)
    fallback = Harness(store, emulator.url, clock, PAYRETRY_STRIPE_CHECKOUT_FALLBACK="true")
    emulator.card("pm_card", "auth")
    fallback.queue("t-fb", error_code="network_error", decline_code=None, window=timedelta(hours=5))
    assert fallback.run()["awaiting_payer"] == 1
    job = fallback.job("t-fb")
    assert job.action is not None
    session = emulator.state.sessions[job.action.ref]
    assert session["customer"] == "cus_1"
    created = emulator.requests("POST", "/v1/checkout/sessions")
    assert [r.key for r in created] == [job.attempts[0].idempotency_key + ":checkout"]
