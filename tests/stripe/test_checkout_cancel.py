"""Cancelling a job that waits on the customer expires its Checkout Session at Stripe first, and
a session completed with a payment method that settles later waits for that payment: through
the real SDK over HTTP against the emulator, on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from payretry.domain.models import AttemptOutcome, JobState
from payretry.errors import ProcessorError, Refused
from payretry.store.sql import SqlStore, open_store
from tests.stripe.conftest import Clock, Harness
from tests.stripe.emulator import Emulator, Fault, SessionClosed

EXPIRE = "POST /v1/checkout/sessions/{}/expire"


@pytest.fixture(
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)],
)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlStore]:
    url = (
        request.getfixturevalue("pg_url")
        if request.param == "postgresql"
        else f"sqlite:///{tmp_path / 'cancel.db'}"
    )
    opened = open_store(url)
    yield opened
    opened.close()


@pytest.fixture
def harness(db: SqlStore, emulator: Emulator, clock: Clock) -> Harness:
    return Harness(db, emulator.url, clock)


def waiting(harness: Harness, emulator: Emulator, txn: str) -> str:
    """A job whose attempt 1 sent the customer to a new Checkout Session; its id."""
    harness.queue(
        txn,
        error_code="network_error",  # attempt 1 at once
        decline_code=None,
        customer=None,
        payment_method=None,
        checkout_session=emulator.session({"cart": "c-1"}),
        window=timedelta(hours=3),
    )
    assert harness.run()["awaiting_payer"] == 1
    job = harness.job(txn)
    assert job.state is JobState.AWAITING_PAYER and job.action is not None
    return job.action.ref


def sessions_created(emulator: Emulator) -> int:
    return len(emulator.requests("POST", "/v1/checkout/sessions"))


def test_cancel_expires_the_session_first_so_the_customer_cannot_pay(
    harness: Harness, emulator: Emulator, clock: Clock
) -> None:
    session = waiting(harness, emulator, "t-cancel")
    cancelled = harness.wiring.operations(processor="stripe").cancel("t-cancel", clock())
    assert cancelled.state is JobState.CANCELLED
    assert emulator.state.sessions[session]["status"] == "expired"
    assert [
        r.status for r in emulator.requests("POST", f"/v1/checkout/sessions/{session}/expire")
    ] == [200]
    with pytest.raises(SessionClosed):  # the customer comes back to the page: nothing to pay
        emulator.complete(session)
    assert harness.run()["processed"] == 0  # nothing is waited on, nothing new is opened
    assert harness.job("t-cancel").state is JobState.CANCELLED
    assert sessions_created(emulator) == 1
    assert not emulator.state.charges


def test_a_session_already_paid_refuses_the_cancel_and_the_job_succeeds(
    harness: Harness, emulator: Emulator, clock: Clock
) -> None:
    session = waiting(harness, emulator, "t-paid")
    intent = emulator.complete(session)  # paid before payretry looked again
    with pytest.raises(Refused) as caught:
        harness.wiring.operations(processor="stripe").cancel("t-paid", clock())
    assert caught.value.exit_code == 3
    assert "already paid" in caught.value.message and intent in caught.value.message
    job = harness.job("t-paid")
    assert job.state is JobState.SUCCEEDED and job.action is None
    assert job.attempts[0].outcome is AttemptOutcome.SUCCEEDED
    assert job.attempts[0].reference == intent
    events = [e.kind.value for e in harness.store.entries_for_job(job.id)]
    assert events[-1] == "retry_success"
    assert harness.run()["processed"] == 0  # the run after settles nothing twice
    assert emulator.state.charges[f"checkout:{session}"] == 1


def test_stripe_unreachable_refuses_the_cancel_and_changes_nothing(
    db: SqlStore, emulator: Emulator, clock: Clock
) -> None:
    harness = Harness(db, emulator.url, clock)
    session = waiting(harness, emulator, "t-down")
    before = harness.job("t-down")
    # Stripe answers 500 (no proof of anything) ...
    emulator.fault(EXPIRE.format(session), Fault(status=500))
    with pytest.raises(ProcessorError) as caught:
        harness.wiring.operations(processor="stripe").cancel("t-down", clock())
    assert caught.value.exit_code == 1 and "nothing was cancelled" in caught.value.message
    # ... or no answer at all: nothing listens on the discard port.
    down = Harness(db, "http://127.0.0.1:9", clock)
    with pytest.raises(ProcessorError, match="could not expire checkout session"):
        down.wiring.operations(processor="stripe").cancel("t-down", clock())
    after = harness.job("t-down")
    assert after.state is JobState.AWAITING_PAYER and after.action == before.action
    assert after.updated_at == before.updated_at
    assert emulator.state.sessions[session]["status"] == "open"
    # The simulated processor (the default) did not open it and cannot expire it: refused too.
    with pytest.raises(Refused, match="not opened by the simulated processor"):
        harness.wiring.operations().cancel("t-down", clock())
    assert harness.job("t-down").state is JobState.AWAITING_PAYER
    # Stripe back: the same cancel goes through.
    cancelled = harness.wiring.operations(processor="stripe").cancel("t-down", clock())
    assert cancelled.state is JobState.CANCELLED


def test_a_session_that_expired_by_itself_is_cancelled_without_fuss(
    harness: Harness, emulator: Emulator, clock: Clock
) -> None:
    session = waiting(harness, emulator, "t-old")
    emulator.expire(session)  # its time ran out before the operator (or run-due) looked
    cancelled = harness.wiring.operations(processor="stripe").cancel("t-old", clock())
    assert cancelled.state is JobState.CANCELLED
    [expire] = emulator.requests("POST", f"/v1/checkout/sessions/{session}/expire")
    assert expire.status == 400  # only an open session expires; the retrieve that follows says why


def test_a_session_completed_unpaid_waits_for_its_payment_then_succeeds(
    harness: Harness, emulator: Emulator, clock: Clock
) -> None:
    session = waiting(harness, emulator, "t-debit")
    intent = emulator.complete(session, paid=False)  # a bank debit: it settles in days
    for _ in range(2):  # each check waits: not expired, no new session
        assert harness.run()["processed"] == 0
        job = harness.job("t-debit")
        assert job.state is JobState.AWAITING_PAYER and job.action is not None
        assert job.action.ref == session
        clock.advance(hours=1)
    assert sessions_created(emulator) == 1
    with pytest.raises(Refused, match="settles later") as caught:  # its money may still come
        harness.wiring.operations(processor="stripe").cancel("t-debit", clock())
    assert caught.value.exit_code == 3
    assert harness.job("t-debit").state is JobState.AWAITING_PAYER
    emulator.async_succeeded(session)
    report = harness.run()
    assert report["succeeded"] == 1, report
    job = harness.job("t-debit")
    assert job.state is JobState.SUCCEEDED and job.attempts[0].reference == intent
    assert job.attempt_count == 1 and sessions_created(emulator) == 1


def test_an_asynchronous_payment_that_fails_ends_the_attempt_and_the_policy_decides(
    harness: Harness, emulator: Emulator, clock: Clock
) -> None:
    session = waiting(harness, emulator, "t-bounce")
    emulator.complete(session, paid=False)
    assert harness.run()["processed"] == 0
    emulator.async_failed(session)
    report = harness.run()
    assert report["rescheduled"] == 1, report
    job = harness.job("t-bounce")
    assert job.state is JobState.SCHEDULED and job.attempts[0].error_code == "checkout_expired"
    assert "settles later) failed" in (job.attempts[0].message or "")
    clock.advance(minutes=5, seconds=1)  # the checkout_expired row: 5 minutes before attempt 2
    assert harness.run()["awaiting_payer"] == 1
    again = harness.job("t-bounce")
    assert again.action is not None and again.action.ref != session
    assert sessions_created(emulator) == 2 and again.attempt_count == 2
