"""Producing: a retry due within 15 minutes goes to the queue at once with DelaySeconds, a later
one waits in the database until due; never a delay above 900 s; a crash between marking and
sending is repaired by the rescue sweep."""

from __future__ import annotations

import time
from datetime import datetime, timedelta

from payretry.clock import utcnow
from payretry.domain.dispatch import delay_seconds
from payretry.domain.models import attempt_key
from payretry.service.dispatcher import Dispatcher
from payretry.service.intake import new_job
from payretry.service.operations import Operations
from payretry.store.sql import SqlStore
from tests.sqs.conftest import Sqs, policy


def queue_one(
    store: SqlStore, error_code: str, now: datetime, txn: str = "txn_1", simulate: str = ""
) -> str:
    request = new_job(
        {
            "transaction_id": txn,
            "user_id": "usr_1",
            "amount": "12.50",
            "currency": "EUR",
            "error_code": error_code,
            "metadata": {"simulate": simulate} if simulate else {},
        },
        now=now,
    )
    job, _ = Operations(store, policy()).queue(request, now)
    return job.id


def dispatch_columns(store: SqlStore, job_id: str) -> tuple[int | None, str | None]:
    from sqlalchemy import select

    from payretry.store.tables import JOBS

    with store.engine.connect() as conn:
        row = conn.execute(
            select(JOBS.c.dispatch_attempt, JOBS.c.dispatch_message_id).where(JOBS.c.id == job_id)
        ).one()
    return row.dispatch_attempt, row.dispatch_message_id


def test_delay_is_rounded_up_and_capped_at_900() -> None:
    now = utcnow()
    assert delay_seconds(now + timedelta(seconds=59.2), now) == 60
    assert delay_seconds(now - timedelta(hours=1), now) == 0
    assert delay_seconds(now + timedelta(days=2), now) == 900


def test_a_60s_retry_is_sent_with_delay_60_and_not_received_before(
    store: SqlStore, sqs: Sqs
) -> None:
    now = utcnow()
    job_id = queue_one(store, "processing_error", now)  # waits 1m before attempt 1
    counts = Dispatcher(store, sqs.queue(), clock=lambda: now).dispatch()
    assert counts["dispatched"] == 1
    assert sqs.sent_delays == [60]
    assert sqs.bodies(wait=1) == []  # delayed: nothing to receive
    assert sqs.depth() == {"visible": 0, "in_flight": 0, "delayed": 1}
    attempt, message_id = dispatch_columns(store, job_id)
    assert attempt == 1 and message_id  # marked, and the send confirmed
    # Dispatching again sends nothing more: the job has its message.
    assert Dispatcher(store, sqs.queue(), clock=lambda: now).dispatch()["dispatched"] == 0


def test_a_short_delay_is_received_only_once_it_has_passed(store: SqlStore, sqs: Sqs) -> None:
    now = utcnow()
    job_id = queue_one(store, "quick_error", now)  # attempt 1 in 2 s
    Dispatcher(store, sqs.queue(), clock=utcnow).dispatch()
    assert sqs.sent_delays in ([1], [2])  # 2 s, less the moments since queueing, rounded up
    assert sqs.bodies() == []
    time.sleep(2.2)
    bodies = sqs.bodies(wait=2)
    assert bodies == [
        {
            "paymentSessionId": "txn_1",
            "attemptNumber": 1,
            "delayMinutes": 0.03,
            "jobId": job_id,
            "idempotencyKey": attempt_key(job_id, 1),
            "dueAt": bodies[0]["dueAt"],
            "version": 1,
        }
    ]


def test_a_24h_retry_is_not_sent_until_due(store: SqlStore, sqs: Sqs) -> None:
    now = utcnow()
    job_id = queue_one(store, "insufficient_funds", now)  # waits 24h
    for later in (timedelta(0), timedelta(hours=12), timedelta(hours=23, minutes=44)):
        at = now + later
        counts = Dispatcher(store, sqs.queue(), clock=lambda: at).dispatch()  # noqa: B023
        assert counts["dispatched"] == 0
    assert dispatch_columns(store, job_id) == (None, None)
    assert sqs.depth() == {"visible": 0, "in_flight": 0, "delayed": 0}
    # Fifteen minutes before due it goes, with the longest delay SQS allows.
    at = now + timedelta(hours=23, minutes=45)
    assert Dispatcher(store, sqs.queue(), clock=lambda: at).dispatch()["dispatched"] == 1
    assert sqs.sent_delays == [900]
    assert sqs.depth()["delayed"] == 1


def test_an_overdue_retry_is_sent_without_delay(store: SqlStore, sqs: Sqs) -> None:
    now = utcnow()
    queue_one(store, "insufficient_funds", now - timedelta(days=2))
    assert Dispatcher(store, sqs.queue(), clock=utcnow).dispatch()["dispatched"] == 1
    assert sqs.sent_delays == [0]
    assert len(sqs.bodies(wait=1)) == 1


def test_a_crash_between_marking_and_sending_is_repaired_by_the_rescue(
    store: SqlStore, sqs: Sqs
) -> None:
    now = utcnow()
    job_id = queue_one(store, "network_error", now)  # due at once
    # The intent is recorded, then the process dies before the send.
    marked = store.mark_dispatch(now, now + timedelta(minutes=15), 10)
    assert [d.job_id for d in marked] == [job_id]
    assert dispatch_columns(store, job_id) == (1, None)
    dispatcher = Dispatcher(store, sqs.queue(), clock=lambda: now + timedelta(seconds=10))
    assert dispatcher.dispatch() == {}  # too early to call it lost; and nothing is undispatched
    later = Dispatcher(store, sqs.queue(), clock=lambda: now + timedelta(minutes=2))
    assert later.dispatch()["resent"] == 1
    assert [b["jobId"] for b in sqs.bodies(wait=1)] == [job_id]
    assert dispatch_columns(store, job_id)[1]  # confirmed now
    assert later.dispatch() == {}


def test_a_message_lost_outside_payretry_is_sent_again_once_overdue(
    store: SqlStore, sqs: Sqs
) -> None:
    """A purged queue loses a message payretry confirmed: the job waits, dispatched, for ever,
    unless the sweep notices it is still waiting well past due and sends it again."""
    now = utcnow()
    job_id = queue_one(store, "network_error", now)  # due at once
    lost_after = timedelta(minutes=2)

    def dispatcher(at: datetime) -> Dispatcher:
        return Dispatcher(store, sqs.queue(), clock=lambda: at, lost_after=lost_after)

    assert dispatcher(now).dispatch()["dispatched"] == 1
    sqs.client.purge_queue(QueueUrl=sqs.queue_url)  # lost outside payretry
    assert sqs.bodies(wait=1) == []
    # Within the allowance a worker may simply not have taken it yet: nothing is sent.
    assert dispatcher(now + timedelta(seconds=90)).dispatch() == {}
    later = now + timedelta(minutes=3)
    assert dispatcher(later).dispatch()["resent"] == 1
    assert [b["jobId"] for b in sqs.bodies(wait=1)] == [job_id]
    attempt, message_id = dispatch_columns(store, job_id)
    assert attempt == 1 and message_id  # the re-send is confirmed
    # The next sweep waits a whole allowance again before another duplicate.
    assert dispatcher(later + timedelta(minutes=1)).dispatch() == {}
    # A job a worker has taken (running) is not lost, however late.
    assert store.claim(later, 1, timedelta(minutes=5), job_id=job_id)
    assert dispatcher(later + timedelta(hours=1)).dispatch() == {}


def test_only_the_given_jobs_are_dispatched_when_named(store: SqlStore, sqs: Sqs) -> None:
    now = utcnow()
    first = queue_one(store, "network_error", now, "txn_a")
    queue_one(store, "network_error", now, "txn_b")
    counts = Dispatcher(store, sqs.queue(), clock=lambda: now).dispatch(job_ids=[first])
    assert counts["dispatched"] == 1
    assert [b["jobId"] for b in sqs.bodies(wait=1)] == [first]
