"""SQS mode's producer on the twins: retries due within 15 minutes go to the queue with their
delay, each once; a send the queue refused or never confirmed is sent again; the dispatch pass
does the runner's first steps, then sends instead of attempting."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

import pytest

from payretry.domain.changes import Claimed
from payretry.domain.dispatch import RetryMessage
from payretry.domain.outcomes import JobResult
from payretry.errors import QueueError
from payretry.service.dispatcher import Dispatcher, DispatchPass, dispatch_soon
from payretry.service.duepass import DueSteps
from payretry.testing import ManualClock, MemoryQueue, MemoryStore
from tests.unit.service.conftest import LEASE, queue

MINUTE = timedelta(minutes=1)


@pytest.fixture
def sqs(clock: ManualClock) -> MemoryQueue:
    return MemoryQueue("payments-retry-unit", clock=clock)


def dispatcher(store: MemoryStore, sqs: MemoryQueue, clock: ManualClock) -> Dispatcher:
    return Dispatcher(store, sqs, clock=clock, batch_size=2, resend_after=MINUTE)


def received(sqs: MemoryQueue) -> list[RetryMessage]:
    found = sqs.receive(max_messages=10, wait_seconds=0, visibility=3600)
    return [RetryMessage.parse(m.body) for m in found]


def three_jobs(store: MemoryStore) -> None:
    queue(store, "now", amount="30.00")  # network_error: due at once
    queue(store, "soon", amount="20.00", error_code="processing_error")  # in 1 m
    queue(store, "tomorrow", amount="10.00", error_code="insufficient_funds")  # in 24 h


def test_retries_due_within_fifteen_minutes_are_sent_with_their_delay(
    store: MemoryStore, sqs: MemoryQueue, clock: ManualClock
) -> None:
    three_jobs(store)
    results: list[JobResult] = []
    counts = dispatcher(store, sqs, clock).dispatch(on_result=results.append)
    assert counts["dispatched"] == 2
    assert {r.transaction_id: r.reason for r in results} == {
        "now": "sent to payments-retry-unit with DelaySeconds=0",
        "soon": "sent to payments-retry-unit with DelaySeconds=60",
    }
    depth = sqs.depth()
    assert (depth.visible, depth.delayed) == (1, 1)
    assert store.dispatch_counts() == {"dispatched": 2, "unconfirmed": 0}
    assert dispatcher(store, sqs, clock).dispatch()["dispatched"] == 0  # each once
    [now] = received(sqs)
    assert (now.payment_session_id, now.attempt_number, now.delay_minutes) == ("now", 1, 0.0)
    clock.advance(MINUTE)
    [soon] = received(sqs)
    assert (soon.payment_session_id, soon.delay_minutes) == ("soon", 1.0)
    clock.advance(timedelta(hours=24) - 15 * MINUTE)
    assert dispatcher(store, sqs, clock).dispatch()["dispatched"] == 1  # tomorrow's, now near


def test_sends_the_queue_refused_are_sent_again(
    store: MemoryStore, sqs: MemoryQueue, clock: ManualClock
) -> None:
    three_jobs(store)
    sqs.refusing = True
    assert dispatcher(store, sqs, clock).dispatch()["dispatched"] == 0
    assert store.dispatch_counts() == {"dispatched": 2, "unconfirmed": 2}  # intents kept
    sqs.refusing = False
    assert dispatcher(store, sqs, clock).dispatch()["resent"] == 0  # not yet: resend_after
    clock.advance(MINUTE)
    counts = dispatcher(store, sqs, clock).dispatch()
    assert counts["resent"] == 2 and counts["dispatched"] == 0
    assert store.dispatch_counts() == {"dispatched": 2, "unconfirmed": 0}
    assert sorted(m.payment_session_id for m in received(sqs)) == ["now", "soon"]


def test_a_queue_that_does_not_answer_leaves_the_jobs_to_the_next_pass(
    store: MemoryStore, sqs: MemoryQueue, clock: ManualClock
) -> None:
    three_jobs(store)
    sqs.down = True
    with pytest.raises(QueueError):
        dispatcher(store, sqs, clock).dispatch()
    assert dispatcher(store, sqs, clock).dispatch_new() == 0  # after a queue: no failure
    sqs.down = False
    clock.advance(MINUTE)
    assert dispatcher(store, sqs, clock).dispatch()["resent"] == 2


def test_only_the_named_jobs_and_at_most_the_limit(
    store: MemoryStore, sqs: MemoryQueue, clock: ManualClock
) -> None:
    three_jobs(store)
    soon = store.find("soon")
    assert soon is not None
    assert dispatcher(store, sqs, clock).dispatch(job_ids=[])["dispatched"] == 0
    assert dispatcher(store, sqs, clock).dispatch_new([soon.id]) == 1
    assert [m.payment_session_id for m in sqs_all(sqs, clock)] == ["soon"]
    for n in range(5):
        queue(store, f"more-{n}")
    assert dispatcher(store, sqs, clock).dispatch(limit=3)["dispatched"] == 3


def sqs_all(sqs: MemoryQueue, clock: ManualClock) -> list[RetryMessage]:
    clock.advance(minutes=15)
    return received(sqs)


def test_the_dispatch_pass_rescues_abandons_then_sends(
    store: MemoryStore, sqs: MemoryQueue, clock: ManualClock
) -> None:
    queue(store, "rescued")
    queue(store, "lapsing", error_code="processing_error", window="3m")
    store.claim(clock(), 1, LEASE)  # "rescued": its runner dies
    clock.advance(LEASE + MINUTE)  # ... and "lapsing"'s window closes
    stop = threading.Event()
    dispatch = DispatchPass(DueSteps(store, clock), dispatcher(store, sqs, clock), stop=stop)
    results: list[JobResult] = []
    report = dispatch.run_due(on_result=results.append)
    assert report.rescued == 1 and report.dispatching
    assert [(r.transaction_id, r.outcome) for r in results] == [
        ("lapsing", "abandoned"),
        ("rescued", "dispatched"),
    ]
    document = report.as_dict()
    assert document["dispatched"] == 1 and document["abandoned"] == 1
    assert document["processed"] == 0


def test_an_attempt_that_scheduled_a_retry_soon_sends_it_now(
    store: MemoryStore, sqs: MemoryQueue, clock: ManualClock
) -> None:
    queue(store, "soon")
    queue(store, "later", amount="5.00")
    [soon, later] = store.claim(clock(), 2, LEASE)
    results = [result(soon, "rescheduled", clock() + MINUTE), result(later, "rescheduled", None)]
    results.append(result(later, "succeeded", None))
    assert dispatch_soon(dispatcher(store, sqs, clock), results) == 0  # still running: none due
    store.release([soon, later], clock())
    assert dispatch_soon(dispatcher(store, sqs, clock), results) == 1
    assert [m.payment_session_id for m in received(sqs)] == ["soon"]


def result(claimed: Claimed, outcome: str, next_at: datetime | None) -> JobResult:
    job = claimed.job
    state = "scheduled" if outcome == "rescheduled" else outcome
    return JobResult(job.transaction_id, job.id, 1, outcome, state, next_retry_at=next_at)
