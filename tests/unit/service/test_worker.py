"""The SQS worker's verdicts on the twins: what it does with each message (attempt it, drop
it, hide it for how long), decided by the job in the store; and its polling loop."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest

from payretry.domain.changes import ClaimBatch, Claimed, Finish
from payretry.domain.dispatch import HORIZON, Outgoing, RetryMessage
from payretry.domain.models import CustomerAction, Job, JobState, attempt_key
from payretry.domain.network_rules import NetworkRules
from payretry.domain.results import AttemptInDoubt, AttemptRequest, AttemptResult
from payretry.errors import ProcessorError
from payretry.service.dispatcher import Dispatcher
from payretry.service.runner import Runner
from payretry.service.worker import Worker
from payretry.testing import ManualClock, MemoryQueue, MemoryStore
from tests.unit.service.conftest import LEASE, POLICY, Scripted, queue

FAILURE_VISIBILITY = 10  # seconds a message the worker could not act on stays hidden
LEASE_S = int(LEASE.total_seconds()) + 1


@dataclass
class Setup:
    store: MemoryStore
    queue: MemoryQueue
    clock: ManualClock
    processor: Scripted
    worker: Worker

    def send(self, job: Job, attempt: int | None = None) -> None:
        number = job.attempt_count + 1 if attempt is None else attempt
        message = RetryMessage(
            job.transaction_id, number, 0.0, job.id, attempt_key(job.id, number), job.next_retry_at
        )
        self.queue.send([Outgoing(message, 0)])

    def handle(self) -> str:
        """Receive the one message there is and let the worker act on it."""
        [received] = self.queue.receive(max_messages=1, wait_seconds=0, visibility=30)
        verdict = self.worker.handle(received)
        self.worker.deleter.flush()  # acknowledged messages are deleted in batches
        return verdict

    def fate(self) -> str | int:
        """What became of the message: "deleted", or the seconds until it comes back."""
        if not self.queue.bodies():
            return "deleted"
        for waited in range(0, 1000):
            found = self.queue.receive(max_messages=1, wait_seconds=0, visibility=0)
            if found:
                return waited
            self.clock.advance(seconds=1)
        raise AssertionError("the message never came back")

    def job(self, txn: str) -> Job:
        found = self.store.find(txn)
        assert found is not None
        return found


def build(store: MemoryStore, clock: ManualClock, processor: Scripted) -> Setup:
    queue = MemoryQueue("payments-retry-unit", clock=clock)
    stop = threading.Event()
    runner = Runner(store, POLICY, processor, clock=clock, lease_for=LEASE, stop=stop)
    worker = Worker(
        store,
        runner,
        queue,
        Dispatcher(store, queue, clock=clock),
        clock=clock,
        wait_time=timedelta(seconds=1),
        visibility=timedelta(seconds=30),
        failure_visibility=timedelta(seconds=FAILURE_VISIBILITY),
        stop=stop,
    )
    return Setup(store, queue, clock, processor, worker)


@pytest.fixture
def setup(store: MemoryStore, clock: ManualClock) -> Setup:
    return build(store, clock, Scripted())


def test_a_due_job_is_attempted_and_its_message_deleted(setup: Setup) -> None:
    setup.send(queue(setup.store, "t1"))
    assert setup.handle() == "succeeded"
    assert setup.fate() == "deleted"
    assert setup.job("t1").state is JobState.SUCCEEDED
    assert setup.processor.transactions == ["t1"]


def test_a_retry_due_soon_is_sent_to_the_queue_at_once(setup: Setup) -> None:
    setup.processor.answers["t1"] = [AttemptResult.failure("network_error")]  # again in 1m
    job = queue(setup.store, "t1")
    setup.send(job)
    assert setup.handle() == "rescheduled"
    depth = setup.queue.depth()
    assert (depth.visible, depth.delayed) == (0, 1)  # the old one gone, the next one delayed
    setup.clock.advance(minutes=1)
    [next_one] = setup.queue.receive(max_messages=1, wait_seconds=0, visibility=30)
    assert RetryMessage.parse(next_one.body).attempt_number == 2
    assert setup.store.dispatch_counts() == {"dispatched": 1, "unconfirmed": 0}


@pytest.mark.parametrize(
    "how", ["final", "past_attempt", "awaiting_customer"], ids=lambda how: str(how)
)
def test_a_message_for_a_past_attempt_is_dropped(setup: Setup, how: str) -> None:
    job = queue(setup.store, "t1")
    [claimed] = setup.store.claim(setup.clock(), 1, LEASE)
    result = {
        "final": AttemptResult.success("pi_1"),
        "past_attempt": AttemptResult.failure("network_error"),
        "awaiting_customer": AttemptResult.awaiting_customer(
            CustomerAction("cs_1", "https://checkout.example/cs_1", None), "complete checkout"
        ),
    }[how]
    finish_with(setup, claimed, result)
    setup.send(job, attempt=1)
    assert setup.handle() == "dropped"
    assert setup.fate() == "deleted"
    assert setup.processor.requests == []


def finish_with(setup: Setup, claimed: Claimed, result: AttemptResult) -> None:
    decision = POLICY.decide(claimed.job, claimed.attempt_number, result, setup.clock())
    assert setup.store.finish([Finish(claimed, result, decision, setup.clock())]) == [True]


def test_a_message_for_a_retry_far_off_is_dropped_and_the_job_sent_again_when_due(
    setup: Setup,
) -> None:
    job = queue(setup.store, "t1", error_code="insufficient_funds")  # due in 24 h
    now = setup.clock()
    assert setup.store.mark_dispatch(now, now + timedelta(days=2), 10)  # sent early, somehow
    setup.send(job)
    assert setup.handle() == "dropped"
    assert setup.fate() == "deleted"
    assert setup.store.dispatch_counts()["dispatched"] == 0  # forgotten: dispatched when due
    later = setup.clock.advance(hours=24) - timedelta(minutes=5)
    assert [d.job_id for d in setup.store.mark_dispatch(later, later + HORIZON, 10)] == [job.id]


def test_a_message_before_its_time_comes_back_when_due(setup: Setup) -> None:
    setup.send(queue(setup.store, "t1", error_code="processing_error"))  # first retry in 1m
    assert setup.handle() == "early"
    assert setup.fate() == 60
    assert setup.processor.requests == []


def test_a_job_leased_by_another_runner_is_looked_at_when_its_lease_would_lapse(
    setup: Setup,
) -> None:
    job = queue(setup.store, "t1")
    setup.store.claim(setup.clock(), 1, LEASE)  # a run-due elsewhere holds it
    setup.send(job)
    assert setup.handle() == "leased"
    assert setup.fate() == LEASE_S


def test_a_job_whose_runner_died_is_rescued_and_attempted(setup: Setup) -> None:
    job = queue(setup.store, "t1")
    [dead] = setup.store.claim(setup.clock(), 1, timedelta(minutes=1))
    setup.clock.advance(minutes=2)
    setup.send(job)
    assert setup.handle() == "succeeded"
    assert setup.processor.keys == [dead.idempotency_key]  # the same key, sent again


class RivalStore(MemoryStore):
    """Another runner always claims the job a message names just before the worker does."""

    def claim(
        self,
        now: datetime,
        limit: int,
        lease_for: timedelta,
        *,
        job_id: str | None = None,
        rules: NetworkRules | None = None,
    ) -> ClaimBatch:
        if job_id is not None:
            super().claim(now, limit, lease_for, job_id=job_id, rules=rules)
        return super().claim(now, limit, lease_for, job_id=job_id, rules=rules)


def test_a_job_taken_twice_under_the_worker_is_busy(clock: ManualClock) -> None:
    setup = build(RivalStore(), clock, Scripted())
    job = queue(setup.store, "t1")
    MemoryStore.claim(setup.store, clock(), 1, timedelta(minutes=1))  # its runner dies
    clock.advance(minutes=2)
    setup.send(job)
    assert setup.handle() == "busy"  # rescued, then taken; looked at again, taken again
    assert setup.fate() == FAILURE_VISIBILITY


@pytest.mark.parametrize(
    ("answer", "verdict", "fate"),
    [
        (AttemptInDoubt("network_error", "no answer"), "in_doubt", LEASE_S),
        (ProcessorError("the processor refused the API key"), "refused", FAILURE_VISIBILITY),
    ],
    ids=["in_doubt", "refused"],
)
def test_an_attempt_without_an_outcome_comes_back_later(
    setup: Setup, answer: Exception, verdict: str, fate: int
) -> None:
    setup.processor.answers["t1"] = [answer]
    setup.send(queue(setup.store, "t1"))
    assert setup.handle() == verdict
    assert setup.fate() == fate
    job = setup.job("t1")
    if verdict == "refused":  # nothing was sent: the job is given back untouched
        assert job.state is JobState.SCHEDULED and job.attempts == ()
    else:  # its lease lapses; the rescue sends the same key again
        assert job.state is JobState.RUNNING and len(job.attempts) == 1


def test_an_outcome_that_cannot_be_written_comes_back_after_the_lease(setup: Setup) -> None:
    setup.send(queue(setup.store, "t1"))
    setup.store.fail("finish")
    assert setup.handle() == "unrecorded"
    assert setup.fate() == LEASE_S


def test_a_stop_before_the_attempt_gives_the_message_back_at_once(setup: Setup) -> None:
    setup.send(queue(setup.store, "t1"))
    setup.worker.stop.set()
    assert setup.handle() == "released"
    assert setup.fate() == 0
    assert setup.job("t1").state is JobState.SCHEDULED


def test_a_lost_lease_leaves_the_job_to_its_new_holder(setup: Setup) -> None:
    store, clock = setup.store, setup.clock

    def taken_over(request: AttemptRequest) -> None:
        later = clock.advance(LEASE + timedelta(minutes=1))
        store.rescue(later)
        store.claim(later, 1, LEASE, job_id=request.job.id)

    setup.processor.during = taken_over
    setup.send(queue(store, "t1"))
    assert setup.handle() == "lost_lease"
    assert setup.fate() == "deleted"


@pytest.mark.parametrize(
    ("body", "verdict"),
    [
        ("{not json", "unreadable"),
        (RetryMessage("t1", 1, 0.0, "f" * 32, attempt_key("f" * 32, 1)).body(), "unknown_job"),
    ],
    ids=["unreadable", "unknown_job"],
)
def test_a_message_the_worker_cannot_use_comes_back_toward_the_dead_letter_queue(
    setup: Setup, body: str, verdict: str
) -> None:
    setup.queue.send_body(body)
    for _ in range(5):  # maxReceiveCount
        assert setup.handle() == verdict
        setup.clock.advance(seconds=FAILURE_VISIBILITY)
    assert setup.queue.receive(max_messages=1, wait_seconds=0, visibility=30) == []
    assert setup.queue.depth().dead == 1  # after maxReceiveCount receives


@pytest.fixture
def running(setup: Setup) -> Iterator[Setup]:
    thread = threading.Thread(target=setup.worker.run, daemon=True)
    thread.start()
    yield setup
    setup.worker.stop.set()
    setup.queue.close()  # ends the worker's long poll, so it sees the stop at once
    thread.join(5)
    assert not thread.is_alive(), "the worker did not stop"


def wait_for(setup: Setup, total: int) -> None:
    deadline = time.monotonic() + 5
    while sum(setup.worker.counts.values()) < total:
        assert time.monotonic() < deadline, dict(setup.worker.counts)
        time.sleep(0.01)


def test_the_loop_handles_what_arrives_and_an_error_brings_a_message_back(
    running: Setup,
) -> None:
    setup = running
    setup.store.fail("get")  # the first message meets a database that went away
    setup.send(queue(setup.store, "t1"))
    wait_for(setup, 1)
    assert dict(setup.worker.counts) == {"error": 1}
    setup.clock.advance(seconds=FAILURE_VISIBILITY)  # it comes back, and goes through
    wait_for(setup, 2)
    assert dict(setup.worker.counts) == {"error": 1, "succeeded": 1}
    deadline = time.monotonic() + 2
    while setup.queue.bodies() and time.monotonic() < deadline:
        time.sleep(0.01)  # the deleter's next batch
    assert setup.queue.bodies() == []
