"""Consuming: one message, one attempt, whatever SQS delivers twice; a worker that died after
recording but before deleting leaves a message that is dropped; early messages wait; a retry
due within 15 minutes goes back to the queue at once."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

from payretry.clock import utcnow
from payretry.dispatch.sqs import SqsQueue
from payretry.domain.dispatch import Received
from payretry.domain.models import JobState
from payretry.processors.simulated import SimulatedProcessor
from payretry.service.dispatcher import Dispatcher
from payretry.store.sql import SqlStore
from tests.daemon.helpers import ledger_rows, wait_for
from tests.sqs.conftest import Running, Sqs, build_worker
from tests.sqs.test_dispatch import queue_one


def processor(tmp_path: Path) -> SimulatedProcessor:
    return SimulatedProcessor(success_rate=1.0, ledger=str(tmp_path / "ledger.db"))


def drained(sqs: Sqs) -> bool:
    return sqs.depth() == {"visible": 0, "in_flight": 0, "delayed": 0}


def test_a_duplicate_delivery_is_attempted_once(store: SqlStore, sqs: Sqs, tmp_path: Path) -> None:
    job_id = queue_one(store, "network_error", utcnow())  # due at once
    queue = sqs.queue()
    assert Dispatcher(store, queue, clock=utcnow).dispatch()["dispatched"] == 1
    # SQS delivers at least once: the same message, twice.
    queue.send_body(json.dumps(sqs.bodies(hide=0)[0]))
    sim = processor(tmp_path)
    # Two at once, and a short lease: the copy that finds the job leased waits for the lease,
    # then finds the attempt made and is dropped.
    worker = build_worker(store, queue, sim, concurrency=2, lease_for=timedelta(seconds=2))
    with Running(worker):
        wait_for(lambda: drained(sqs), 40, "both copies handled")
    assert [(key, sends) for key, sends in ledger_rows(tmp_path / "ledger.db")] == [
        (f"payretry:{job_id}:1", 1)
    ]
    job = store.get(job_id)
    assert job is not None and job.state is JobState.SUCCEEDED and job.attempt_count == 1
    assert worker.counts["succeeded"] == 1
    assert worker.counts["dropped"] >= 1  # the copies: one attempt between them


def test_a_worker_dead_before_deleting_leaves_a_message_that_is_dropped(
    store: SqlStore, sqs: Sqs, tmp_path: Path
) -> None:
    job_id = queue_one(store, "network_error", utcnow())
    queue = sqs.queue()
    Dispatcher(store, queue, clock=utcnow).dispatch()

    class DiesBeforeDeleting(SqsQueue):
        """The process dies between recording the outcome and deleting the message: nothing
        after that point happens, and the message's visibility lapses."""

        def delete_many(self, receipts: Sequence[str]) -> int:
            first.stop.set()
            return 0

    dying = DiesBeforeDeleting(queue.client, queue.name, queue.url, queue.dlq_name)
    sim = processor(tmp_path)
    first = build_worker(store, dying, sim, visibility=timedelta(seconds=1))
    first.keeper.seconds = 1
    with Running(first):
        wait_for(lambda: first.stop.is_set(), 20, "the first worker to record and die")
    job = store.get(job_id)
    assert job is not None and job.state is JobState.SUCCEEDED
    assert sqs.depth()["visible"] + sqs.depth()["in_flight"] == 1  # the message is still there
    second = build_worker(store, queue, sim)
    with Running(second):
        wait_for(lambda: drained(sqs), 20, "the returned message to be dropped")
    assert second.counts == {"dropped": 1}
    assert ledger_rows(tmp_path / "ledger.db") == [(f"payretry:{job_id}:1", 1)]


def test_a_retry_due_within_15_minutes_is_dispatched_by_the_worker(
    store: SqlStore, sqs: Sqs, tmp_path: Path
) -> None:
    job_id = queue_one(store, "quick_error", utcnow(), simulate="quick_error,succeeded")
    queue = sqs.queue()
    Dispatcher(store, queue, clock=utcnow).dispatch()  # attempt 1 in 2 s
    worker = build_worker(store, queue, processor(tmp_path))
    with Running(worker):
        wait_for(
            lambda: (j := store.get(job_id)) is not None and j.state is JobState.SUCCEEDED,
            20,
            "two attempts, the second sent by the worker",
        )
        wait_for(lambda: drained(sqs), 10, "both messages deleted")
    assert len(sqs.sent_delays) == 2 and set(sqs.sent_delays) <= {0, 1, 2}  # each sent at once
    # (0: a loaded machine took over a second between the scheduling and the send)
    assert worker.counts == {"rescheduled": 1, "succeeded": 1}
    assert sorted(k for k, _ in ledger_rows(tmp_path / "ledger.db")) == [
        f"payretry:{job_id}:1",
        f"payretry:{job_id}:2",
    ]


def test_an_early_message_is_hidden_until_due_then_attempted(
    store: SqlStore, sqs: Sqs, tmp_path: Path
) -> None:
    queued_at = utcnow()
    job_id = queue_one(store, "quick_error", queued_at)  # due in 2 s
    marked = store.mark_dispatch(queued_at, queued_at + timedelta(minutes=15), 10)
    queue = sqs.queue()
    queue.send_body(marked[0].message().body())  # sent without its delay: arrives early
    worker = build_worker(store, queue, processor(tmp_path))
    # Looked at before it is due (the clock held at queueing time): hidden, not attempted.
    worker.clock = lambda: queued_at
    early = queue.receive(max_messages=1, wait_seconds=1, visibility=30)
    assert [worker.handle(m) for m in early] == ["early"]
    assert sqs.depth()["in_flight"] == 1
    worker.clock = utcnow
    with Running(worker):
        wait_for(lambda: drained(sqs), 20, "the message to be handled once due")
    job = store.get(job_id)
    assert job is not None and job.state is JobState.SUCCEEDED
    assert worker.counts["succeeded"] == 1


def test_messages_for_final_or_moved_on_jobs_are_dropped_unattempted(
    store: SqlStore, sqs: Sqs, tmp_path: Path
) -> None:
    from payretry.service.operations import Operations
    from tests.sqs.conftest import policy

    now = utcnow()
    cancelled = queue_one(store, "network_error", now, "txn_c")
    moved_on = queue_one(store, "network_error", now, "txn_m")
    queue = sqs.queue()
    Dispatcher(store, queue, clock=utcnow).dispatch()
    Operations(store, policy()).cancel("txn_c", now)
    sim = processor(tmp_path)
    worker = build_worker(store, sqs.queue(), sim)
    # An attempt of txn_m made elsewhere (run-due, say) before its message arrives.
    claimed = store.claim(now, 1, timedelta(minutes=5), job_id=moved_on)
    worker.runner.attempt_claimed(claimed[0])
    with Running(worker):
        wait_for(lambda: drained(sqs), 20, "both messages handled")
    assert worker.counts == {"dropped": 2}
    assert len(ledger_rows(tmp_path / "ledger.db")) == 1  # the attempt made elsewhere only
    job = store.get(cancelled)
    assert job is not None and job.state is JobState.CANCELLED


def test_received_is_parsed_for_its_receive_count(sqs: Sqs) -> None:
    queue = sqs.queue()
    queue.send_body("hello")
    got: list[Received] = queue.receive(max_messages=1, wait_seconds=1, visibility=0)
    again = queue.receive(max_messages=1, wait_seconds=1, visibility=0)
    assert [r.body for r in got] == ["hello"] and got[0].receive_count == 1
    assert again[0].receive_count == 2 and again[0].sent_at is not None


def test_visibility_is_extended_while_an_attempt_runs(
    store: SqlStore, sqs: Sqs, tmp_path: Path
) -> None:
    job_id = queue_one(store, "network_error", utcnow())
    queue = sqs.queue()
    Dispatcher(store, queue, clock=utcnow).dispatch()
    slow = SimulatedProcessor(
        success_rate=1.0, latency=timedelta(seconds=2.5), ledger=str(tmp_path / "ledger.db")
    )
    # A 1 s visibility: without extension, the other worker would get the message mid-attempt.
    first = build_worker(store, queue, slow, visibility=timedelta(seconds=1))
    other = build_worker(store, sqs.queue(), processor(tmp_path), visibility=timedelta(seconds=1))
    with Running(first):
        wait_for(lambda: ledger_rows(tmp_path / "ledger.db") != [], 20, "the attempt to start")
        with Running(other):  # polls while the attempt runs, 2.5 s of 1 s visibilities
            wait_for(lambda: first.counts["succeeded"] == 1, 20, "the slow attempt")
            wait_for(lambda: drained(sqs), 10, "the message deleted")
    assert other.counts == {}  # never saw it
    job = store.get(job_id)
    assert job is not None and job.state is JobState.SUCCEEDED


def test_a_job_whose_holder_died_is_rescued_and_sent_with_the_same_key(
    store: SqlStore, sqs: Sqs, tmp_path: Path
) -> None:
    job_id = queue_one(store, "network_error", utcnow())
    queue = sqs.queue()
    Dispatcher(store, queue, clock=utcnow).dispatch()
    # Another runner claimed it (its attempt row written) and died: its lease lapses in 0.5 s.
    dead = store.claim(utcnow(), 1, timedelta(seconds=0.5), job_id=job_id)
    assert dead and dead[0].idempotency_key == f"payretry:{job_id}:1"
    worker = build_worker(store, queue, processor(tmp_path))
    with Running(worker):
        wait_for(lambda: drained(sqs), 20, "the message handled")
    job = store.get(job_id)
    assert job is not None and job.state is JobState.SUCCEEDED and job.attempt_count == 1
    assert ledger_rows(tmp_path / "ledger.db") == [(f"payretry:{job_id}:1", 1)]
    assert worker.counts["succeeded"] == 1
