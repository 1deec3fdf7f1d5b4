"""The runner's pool, rate limiter, graceful stop, heartbeat, rescue and fencing."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from payretry.config import load_settings
from payretry.domain.changes import Finish
from payretry.domain.models import JobState
from payretry.domain.results import AttemptRequest, AttemptResult
from payretry.pacing import RateLimiter, parse_rate
from payretry.service.runner import Runner
from payretry.store.sql import SqlStore
from tests.daemon.helpers import queue_jobs

T0 = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
POLICY = load_settings(env={}).policy()


class Recorder:
    """A processor that records start times and the most attempts ever in flight."""

    name = "recorder"
    needs_history = False
    rate: float | None = None

    def __init__(self, latency: float = 0.0, on_start: threading.Event | None = None) -> None:
        self.latency = latency
        self.starts: list[float] = []
        self.keys: list[str] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.lock = threading.Lock()
        self.on_start = on_start

    def attempt(self, request: AttemptRequest) -> AttemptResult:
        with self.lock:
            self.starts.append(time.monotonic())
            self.keys.append(request.idempotency_key)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        if self.on_start is not None:
            self.on_start.set()
        time.sleep(self.latency)
        with self.lock:
            self.in_flight -= 1
        return AttemptResult.success(f"ref_{request.idempotency_key}")

    def close(self) -> None:
        pass


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def test_pool_is_bounded_and_paced_by_the_rate_limit(store: SqlStore) -> None:
    queue_jobs(store, 40, T0)
    processor = Recorder(latency=0.05)
    runner = Runner(
        store, POLICY, processor, clock=Clock(T0), concurrency=4, limiter=RateLimiter(50)
    )
    started = time.monotonic()
    report = runner.run_due()
    elapsed = time.monotonic() - started
    assert report.counts["succeeded"] == 40
    assert processor.max_in_flight <= 4
    assert elapsed >= 39 / 50 * 0.95  # 40 starts spaced 20 ms apart
    starts = sorted(processor.starts)
    for index, first in enumerate(starts):  # no one-second window holds more than 50 starts
        assert sum(1 for s in starts[index:] if s - first < 1.0) <= 50
    assert len(set(processor.keys)) == 40


def test_claims_are_sized_to_what_the_limiter_can_start_within_the_lease(
    store: SqlStore,
) -> None:
    runner = Runner(
        store,
        POLICY,
        Recorder(),
        clock=Clock(T0),
        lease_for=timedelta(seconds=10),
        limiter=RateLimiter(2),
        batch_size=200,
    )
    assert runner.claim_size(None) == 10  # 2/s over half a 10 s lease
    assert runner.claim_size(3) == 3
    assert Runner(store, POLICY, Recorder(), clock=Clock(T0)).claim_size(None) == 200


def test_stop_finishes_in_flight_and_releases_the_unstarted(store: SqlStore) -> None:
    queue_jobs(store, 20, T0)
    started = threading.Event()
    processor = Recorder(latency=0.3, on_start=started)
    stop = threading.Event()
    runner = Runner(
        store, POLICY, processor, clock=Clock(T0), concurrency=2, stop=stop, batch_size=20
    )

    def stop_after_first_start() -> None:
        started.wait(5)
        stop.set()

    threading.Thread(target=stop_after_first_start, daemon=True).start()
    report = runner.run_due()
    attempted = len(processor.keys)
    assert 1 <= attempted < 20
    assert report.counts["succeeded"] == attempted
    assert report.counts["released"] == 20 - attempted
    stats = store.stats(T0)
    assert stats.by_state == {"succeeded": attempted, "scheduled": 20 - attempted}
    assert stats.attempts_by_outcome == {"succeeded": attempted}  # no pending rows left behind


def test_heartbeat_keeps_a_slow_attempt_leased(store: SqlStore) -> None:
    queue_jobs(store, 1, T0)
    seen: list[datetime | None] = []

    class Slow(Recorder):
        def attempt(self, request: AttemptRequest) -> AttemptResult:
            time.sleep(0.5)  # the lease is 0.3 s: the heartbeat must push it on
            seen.append(store.list_jobs(state=JobState.RUNNING)[0].lease_expires_at)
            return AttemptResult.success()

    clock = Clock(T0)
    runner = Runner(store, POLICY, Slow(), clock=clock, lease_for=timedelta(seconds=0.3))
    clock.now = T0  # the heartbeat extends to clock() + lease each beat
    report = runner.run_due()
    assert report.counts["succeeded"] == 1
    assert seen and seen[0] is not None and seen[0] > T0


def test_rescue_boundaries(store: SqlStore) -> None:
    queue_jobs(store, 4, T0 - timedelta(hours=3))
    lease = timedelta(minutes=5)
    long_ago = store.claim(T0 - timedelta(hours=2), 1, lease)  # expired long ago
    just_now = store.claim(T0 - lease, 1, lease)  # expires exactly at T0
    in_a_minute = store.claim(T0 - lease + timedelta(minutes=1), 1, lease)
    assert long_ago and just_now and in_a_minute
    # The fourth is finished: rescue must not touch final jobs.
    last = store.claim(T0, 1, lease)
    result = AttemptResult.success()
    store.finish(
        [
            Finish(
                last[0], result, POLICY.decide(last[0].job, last[0].attempt_number, result, T0), T0
            )
        ]
    )
    assert store.rescue(T0).rescued == 2
    states = {j.transaction_id: j for j in store.list_jobs()}
    assert states[long_ago[0].job.transaction_id].state is JobState.SCHEDULED
    assert states[just_now[0].job.transaction_id].state is JobState.SCHEDULED
    assert states[in_a_minute[0].job.transaction_id].state is JobState.RUNNING
    assert states[last[0].job.transaction_id].state is JobState.SUCCEEDED
    # No attempt was counted, and the re-claim re-sends the same key.
    rescued = states[long_ago[0].job.transaction_id]
    assert rescued.attempt_count == 0
    again = store.claim(T0, 1, lease, job_id=rescued.id)
    assert again[0].idempotency_key == long_ago[0].idempotency_key


def test_a_stale_worker_cannot_overwrite_the_new_holders_result(store: SqlStore) -> None:
    """A's lease expires mid-attempt; B rescues, re-claims and finishes; A's late write is
    discarded and B's result stands."""
    queue_jobs(store, 1, T0, metadata={"simulate": "succeeded"})
    clock = Clock(T0)
    lease = timedelta(minutes=5)

    class ProcessorB(Recorder):
        def attempt(self, request: AttemptRequest) -> AttemptResult:
            return AttemptResult.failure("processing_error", message="B's answer")

    class ProcessorA(Recorder):
        def attempt(self, request: AttemptRequest) -> AttemptResult:
            # A stalls past its lease; meanwhile B takes over and finishes the job.
            clock.now = T0 + lease + timedelta(seconds=1)
            b = Runner(store, POLICY, ProcessorB(), clock=clock, lease_for=lease)
            report_b = b.run_due()
            assert report_b.rescued == 1 and report_b.counts["rescheduled"] == 1
            return AttemptResult.success("A's late success")

    a = Runner(store, POLICY, ProcessorA(), clock=clock, lease_for=lease)
    report_a = a.run_due(limit=1)
    assert report_a.counts["lost_lease"] == 1
    assert report_a.counts["succeeded"] == 0
    job = store.list_jobs()[0]
    assert job.state is JobState.SCHEDULED
    assert job.attempt_count == 1
    assert [(a.outcome.value, a.error_code) for a in job.attempts] == [
        ("failed", "processing_error")
    ]


@pytest.mark.parametrize(
    ("text", "per_second"),
    [("25/s", 25.0), ("25", 25.0), ("1500/m", 25.0), ("0", None), (None, None)],
)
def test_parse_rate(text: str | None, per_second: float | None) -> None:
    assert parse_rate(text) == per_second


@pytest.mark.parametrize("text", ["fast", "10/y", "-1", "nan"])
def test_parse_rate_refuses_nonsense(text: str) -> None:
    with pytest.raises(ValueError, match="rate"):
        parse_rate(text)


def test_limiter_pause_holds_every_caller_back() -> None:
    now = [100.0]
    limiter = RateLimiter(10, clock=lambda: now[0], sleep=lambda s: None)
    assert limiter.reserve() == 0
    assert limiter.reserve() == pytest.approx(0.1)
    limiter.pause(5)
    assert limiter.reserve() == pytest.approx(5)


class Threads(Recorder):
    """A Recorder that also notes which thread ran each attempt."""

    def __init__(self, latency: float = 0.0) -> None:
        super().__init__(latency)
        self.threads: list[str] = []

    def attempt(self, request: AttemptRequest) -> AttemptResult:
        self.threads.append(threading.current_thread().name)
        if self.latency:
            return super().attempt(request)
        self.keys.append(request.idempotency_key)  # at once, as the simulated processor
        return AttemptResult.success(f"ref_{request.idempotency_key}")


def test_a_pool_gives_way_to_the_batch_thread_while_attempts_answer_at_once(
    store: SqlStore,
) -> None:
    queue_jobs(store, 30, T0)
    processor = Threads()
    runner = Runner(store, POLICY, processor, clock=Clock(T0), concurrency=4, batch_size=10)
    report = runner.run_due()
    assert report.counts["succeeded"] == 30 and len(set(processor.keys)) == 30
    pooled = [name.startswith("payretry-attempt") for name in processor.threads]
    assert pooled == [False] * 30  # the first attempt, alone, measures; then in order
    assert runner.execution.latency.quick


def test_a_pool_stays_while_attempts_wait_and_comes_back_when_they_slow_down(
    store: SqlStore,
) -> None:
    queue_jobs(store, 30, T0)
    processor = Threads(latency=0.005)  # above the threshold: threads help
    runner = Runner(store, POLICY, processor, clock=Clock(T0), concurrency=4, batch_size=10)
    assert runner.run_due().counts["succeeded"] == 30
    pooled = [name.startswith("payretry-attempt") for name in processor.threads]
    assert pooled == [False] + [True] * 29  # the first attempt, alone, measures
    assert processor.max_in_flight > 1
    assert not runner.execution.latency.quick

    queue_jobs(store, 30, T0, prefix="more")
    flips = Threads()
    runner = Runner(store, POLICY, flips, clock=Clock(T0), concurrency=4, batch_size=10)
    runner.run_due(limit=10)  # its first attempt quick: that batch and the next in order
    assert runner.execution.latency.quick
    flips.latency = 0.005  # now it waits
    flips.threads.clear()
    runner.run_due(limit=10)  # this batch in order, measured slow: the next in the pool
    assert not any(name.startswith("payretry-attempt") for name in flips.threads)
    assert not runner.execution.latency.quick
    flips.threads.clear()
    assert runner.run_due().counts["succeeded"] == 10
    assert all(name.startswith("payretry-attempt") for name in flips.threads)


def test_pooled_outcomes_are_recorded_a_group_at_a_time(store: SqlStore) -> None:
    queue_jobs(store, 120, T0)
    calls: list[int] = []
    finish = store.finish

    def counted(finishes: list[Finish]) -> list[bool]:
        calls.append(len(finishes))
        return finish(finishes)

    store.finish = counted  # type: ignore[method-assign,assignment]
    runner = Runner(
        store, POLICY, Recorder(latency=0.002), clock=Clock(T0), concurrency=4, batch_size=120
    )
    assert runner.run_due().counts["succeeded"] == 120
    assert sum(calls) == 120 and len(calls) <= 4  # groups of 50 (or so), not one per answer
    assert all(state == JobState.SUCCEEDED for state in (j.state for j in store.list_jobs()))
