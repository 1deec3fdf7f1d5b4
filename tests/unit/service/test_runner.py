"""The runner on the twins: claim order, each outcome, a lost lease, attempts in doubt, a stop,
the pool's bound, pacing after a 429, the processor refusing, the database going away."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any

import pytest

import payretry.service.runner as runner_module
from payretry.backoff import Backoff
from payretry.domain.models import AttemptOutcome, JobState
from payretry.domain.outcomes import JobResult
from payretry.domain.results import AttemptInDoubt, AttemptRequest, AttemptResult
from payretry.errors import ProcessorError, StoreError
from payretry.service.runner import Runner
from payretry.testing import ManualClock, MemoryStore
from tests.unit.service.conftest import LEASE, POLICY, Scripted, queue

MINUTE = timedelta(minutes=1)


def runner(store: MemoryStore, processor: Scripted, clock: ManualClock, **kw: Any) -> Runner:
    return Runner(store, POLICY, processor, clock=clock, lease_for=LEASE, **kw)


def state(store: MemoryStore, txn: str) -> JobState:
    job = store.find(txn)
    assert job is not None
    return job.state


def test_due_jobs_are_taken_biggest_first_then_in_queue_order(
    store: MemoryStore, clock: ManualClock
) -> None:
    for txn, amount in [
        ("small", "5.00"),
        ("big-1", "50.00"),
        ("mid", "20.00"),
        ("big-2", "50.00"),
    ]:
        queue(store, txn, amount=amount)
    queue(store, "later", amount="99.00", error_code="insufficient_funds")  # due in 24 h
    processor = Scripted()
    report = runner(store, processor, clock, batch_size=2).run_due()
    assert processor.transactions == ["big-1", "big-2", "mid", "small"]
    assert report.processed == 4 and report.counts["succeeded"] == 4
    assert state(store, "later") is JobState.SCHEDULED
    assert processor.keys[0] == f"payretry:{store.find('big-1').id}:1"  # type: ignore[union-attr]


def test_each_outcome_is_decided_recorded_and_reported(
    store: MemoryStore, clock: ManualClock
) -> None:
    queue(store, "paid")
    queue(store, "again")
    queue(store, "stolen")
    queue(store, "window", window="3m")  # attempt 2 would come 5m after attempt 1
    processor = Scripted(
        {
            "again": [AttemptResult.failure("processing_error")],
            "stolen": [AttemptResult.failure("card_declined", "stolen_card")],
            "window": [AttemptResult.failure("processing_error")],
        }
    )
    results: list[JobResult] = []
    report = runner(store, processor, clock).run_due(on_result=results.append)
    assert {r.transaction_id: r.outcome for r in results} == {
        "paid": "succeeded",
        "again": "rescheduled",
        "stolen": "failed",
        "window": "abandoned",
    }
    assert report.processed == 4
    assert {s: report.counts[s] for s in ("succeeded", "rescheduled", "failed", "abandoned")} == {
        "succeeded": 1,
        "rescheduled": 1,
        "failed": 1,
        "abandoned": 1,
    }
    again = store.find("again")
    assert again is not None and again.next_retry_at == clock() + 5 * MINUTE
    assert [a.outcome for a in again.attempts] == [AttemptOutcome.FAILED]
    # Two more failures use up its three attempts.
    clock.advance(minutes=5)
    runner(store, processor, clock).run_due()
    clock.advance(minutes=30)
    last = runner(store, processor, clock).run_due(on_result=results.append)
    assert last.counts["exhausted"] == 1 and state(store, "again") is JobState.EXHAUSTED
    assert processor.transactions.count("again") == 3
    assert [k.rsplit(":", 1)[1] for k in processor.keys if again.id in k] == ["1", "2", "3"]


def test_an_outcome_after_the_lease_was_lost_is_discarded(
    store: MemoryStore, clock: ManualClock
) -> None:
    job = queue(store, "t1")
    rival: list[str] = []

    def rescued_meanwhile(request: AttemptRequest) -> None:
        # Our lease lapses mid-attempt; the rescue returns the job and another runner takes it.
        later = clock.advance(LEASE + MINUTE)
        store.rescue(later)
        [taken] = store.claim(later, 1, LEASE, job_id=request.job.id)
        rival.append(taken.lease_token)

    results: list[JobResult] = []
    report = runner(store, Scripted(during=rescued_meanwhile), clock).run_due(
        on_result=results.append
    )
    assert [r.outcome for r in results] == ["lost_lease"]
    assert report.counts["lost_lease"] == 1 and report.processed == 0
    now = store.get(job.id)
    assert now is not None and now.state is JobState.RUNNING and now.lease_token == rival[0]
    assert [a.outcome for a in now.attempts] == [AttemptOutcome.PENDING]  # the rival's to record


def test_three_attempts_in_doubt_in_a_row_end_the_run(
    store: MemoryStore, clock: ManualClock
) -> None:
    for n in range(5):
        queue(store, f"t{n}", amount=f"{50 - n}.00")
    processor = Scripted(
        {f"t{n}": [AttemptInDoubt("network_error", "no answer")] for n in range(5)}
    )
    report = runner(store, processor, clock).run_due()
    assert report.counts["in_doubt"] == 3 and report.counts["released"] == 2
    assert processor.transactions == ["t0", "t1", "t2"]
    assert [state(store, f"t{n}") for n in range(5)] == [JobState.RUNNING] * 3 + [
        JobState.SCHEDULED
    ] * 2
    # The leases lapse; the rescue returns them and the same keys are sent again.
    clock.advance(LEASE + MINUTE)
    processor.answers.clear()
    again = runner(store, processor, clock).run_due()
    assert again.rescued == 3 and again.counts["succeeded"] == 5
    assert processor.keys[3:6] == processor.keys[:3]  # t0..t2 first again: same keys


@pytest.mark.parametrize("concurrency", [1, 4])  # 4: the run's first attempt goes alone
def test_a_stop_releases_what_has_not_started(
    store: MemoryStore, clock: ManualClock, concurrency: int
) -> None:
    for n in range(4):
        queue(store, f"t{n}", amount=f"{50 - n}.00")
    stop = threading.Event()
    processor = Scripted(during=lambda request: stop.set())  # SIGTERM during the first
    report = runner(store, processor, clock, stop=stop, concurrency=concurrency).run_due()
    assert report.processed == 1 and report.counts["released"] == 3
    assert processor.transactions == ["t0"]
    for n in (1, 2, 3):
        job = store.find(f"t{n}")
        assert job is not None and job.state is JobState.SCHEDULED
        assert job.attempts == () and job.lease_token is None


def test_the_pool_runs_at_most_concurrency_attempts_at_once(
    store: MemoryStore, clock: ManualClock
) -> None:
    for n in range(9):
        queue(store, f"t{n}")
    lock, running, most = threading.Lock(), [0], [0]

    def slow(request: AttemptRequest) -> None:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.03)
        with lock:
            running[0] -= 1

    report = runner(store, Scripted(during=slow), clock, concurrency=3).run_due()
    assert report.processed == 9 and report.counts["succeeded"] == 9
    assert most[0] == 3


def test_a_429_paces_the_run_at_the_processors_rate(store: MemoryStore, clock: ManualClock) -> None:
    queue(store, "first", amount="20.00")
    queue(store, "second", amount="10.00")
    slow_down = AttemptResult.failure("rate_limit_exceeded", retry_after=0.1)
    processor = Scripted({"first": [slow_down]}, rate=40.0)
    run = runner(store, processor, clock)
    assert run.limiter is None  # no --rate: unpaced until asked to slow down
    report = run.run_due()
    assert report.counts["rescheduled"] == 1 and report.counts["succeeded"] == 1
    assert run.limiter is not None and run.limiter.rate == 40.0
    assert processor.started[1] - processor.started[0] >= 0.09


@pytest.mark.parametrize("concurrency", [1, 4])  # 4: the run's first attempt goes alone
def test_a_refused_key_gives_the_batch_back_and_ends_the_run(
    store: MemoryStore, clock: ManualClock, concurrency: int
) -> None:
    queue(store, "first", amount="20.00")
    queue(store, "second", amount="10.00")
    queue(store, "third", amount="5.00")
    processor = Scripted({"first": [ProcessorError("the processor refused the API key")]})
    with pytest.raises(ProcessorError):
        runner(store, processor, clock, concurrency=concurrency).run_due()
    assert processor.transactions == ["first"]
    for txn in ("first", "second", "third"):
        job = store.find(txn)
        assert job is not None and job.state is JobState.SCHEDULED
        assert job.attempts == () and job.attempt_count == 0  # nothing was sent


def test_outcomes_that_cannot_be_written_are_left_to_the_rescue(
    store: MemoryStore, clock: ManualClock
) -> None:
    queue(store, "t1")
    store.fail("finish")
    processor = Scripted()
    report = runner(store, processor, clock).run_due()
    assert report.counts["unrecorded"] == 1 and report.processed == 0
    assert state(store, "t1") is JobState.RUNNING
    clock.advance(LEASE + MINUTE)
    again = runner(store, processor, clock).run_due()
    assert again.rescued == 1 and again.counts["succeeded"] == 1
    assert processor.keys[1] == processor.keys[0]  # the same key: the processor replays


def test_the_run_waits_for_the_database_to_come_back(
    store: MemoryStore, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner_module, "RECONNECT", Backoff(first=0.01))  # 0.5 s in production
    queue(store, "t1")
    store.fail("claim", times=2)  # a restart: two claims fail, the third works
    report = runner(store, Scripted(), clock).run_due()
    assert report.counts["succeeded"] == 1
    queue(store, "t2")
    store.fail("claim")
    with pytest.raises(StoreError):  # no patience left for a longer outage
        runner(store, Scripted(), clock, max_outage=timedelta(0)).run_due()


def test_the_heartbeat_keeps_the_lease_of_a_long_attempt(
    store: MemoryStore, clock: ManualClock
) -> None:
    job = queue(store, "t1")
    lease = timedelta(seconds=0.15)  # a beat every 50 ms
    seen: list[Any] = []

    def long_attempt(request: AttemptRequest) -> None:
        later = clock.advance(minutes=10)
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            held = store.get(job.id)
            if held is not None and held.lease_expires_at == later + lease:
                seen.append(held.lease_expires_at)
                return
            time.sleep(0.01)

    report = Runner(
        store, POLICY, Scripted(during=long_attempt), clock=clock, lease_for=lease
    ).run_due()
    assert seen, "the lease was never extended"
    assert report.counts["succeeded"] == 1  # still ours when the outcome was written
