"""The operator's and the application's use cases on the in-memory store: queue (idempotent,
conflicts refused), queue many (all or nothing), status, cancel (fenced on the job as seen),
retry now (and each reason it refuses)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from payretry.domain.changes import Cancelled, Finish, Queued
from payretry.domain.models import CustomerAction, Job, JobState
from payretry.domain.results import AttemptResult
from payretry.errors import InvalidRows, NotFound, Refused
from payretry.service.operations import Operations
from payretry.service.runner import Runner
from payretry.testing import ManualClock, MemoryStore
from tests.unit.service.conftest import LEASE, POLICY, T0, Scripted, queue, request

MINUTE = timedelta(minutes=1)


def operations(store: MemoryStore) -> Operations:
    return Operations(store, POLICY)


# -- queue -------------------------------------------------------------------------------------


def test_queueing_the_same_request_twice_returns_the_same_job(store: MemoryStore) -> None:
    ops = operations(store)
    job, created = ops.queue(request("t1", metadata={"order": "A-1"}), T0)
    assert created and job.state is JobState.SCHEDULED and job.next_retry_at == T0
    again, created = ops.queue(request("t1", metadata={"order": "A-1"}), T0 + MINUTE)
    assert not created and again.id == job.id
    assert len(store.list_jobs()) == 1
    assert len(store.entries_for_job(job.id)) == 1  # one queued change, not two


@pytest.mark.parametrize(
    "change",
    [{"amount": "11.00"}, {"user_id": "usr_2"}, {"metadata": {"order": "B"}}, {"priority": 7}],
    ids=["amount", "user", "metadata", "priority"],
)
def test_a_different_request_for_an_active_transaction_is_refused(
    store: MemoryStore, change: dict[str, Any]
) -> None:
    ops = operations(store)
    job, _ = ops.queue(request("t1", metadata={"order": "A-1"}), T0)
    with pytest.raises(Refused, match="already active") as caught:
        ops.queue(request("t1", **{"metadata": {"order": "A-1"}, **change}), T0)
    assert caught.value.exit_code == 3 and job.id in str(caught.value)
    assert [j.id for j in store.list_jobs()] == [job.id]


def test_a_transaction_paid_by_a_retry_is_never_queued_again(
    store: MemoryStore, clock: ManualClock
) -> None:
    queue(store, "t1")
    Runner(store, POLICY, Scripted(), clock=clock).run_due()
    with pytest.raises(Refused, match="already paid"):
        operations(store).queue(request("t1"), T0)
    assert len(store.list_jobs()) == 1


def test_a_cancelled_transaction_may_be_queued_again(store: MemoryStore) -> None:
    first = queue(store, "t1")
    operations(store).cancel("t1", T0)
    second, created = operations(store).queue(request("t1"), T0 + MINUTE)
    assert created and second.id != first.id


@pytest.mark.parametrize(
    ("fields", "why"),
    [
        ({"error_code": "card_declined", "decline_code": "stolen_card"}, "not retryable"),
        ({"error_code": "processing_error", "window": "30s"}, "window too short"),
        ({"expires_at": "2026-11-22T11:00:00Z"}, "window closed"),
    ],
    ids=["never-retried", "window-too-short", "window-closed"],
)
def test_what_the_policy_refuses_is_never_stored(
    store: MemoryStore, fields: dict[str, Any], why: str
) -> None:
    with pytest.raises(Refused, match=why.split()[0]):
        operations(store).queue(request("t1", **fields), T0)
    assert store.list_jobs() == []
    assert store.recent_entries(limit=10) == []


class RacingStore(MemoryStore):
    """Another `payretry queue` of the same transaction commits between our look and our
    insert: the look misses it, the insert meets it."""

    blind = 0

    def active_for(self, transaction_ids: Sequence[str]) -> dict[str, Job]:
        if self.blind:
            self.blind -= 1
            return {}
        return super().active_for(transaction_ids)


def test_a_concurrent_queue_of_the_same_request_returns_the_winner() -> None:
    store = RacingStore()
    winner = queue(store, "t1")
    store.blind = 1
    job, created = operations(store).queue(request("t1"), T0)
    assert not created and job.id == winner.id
    store.blind = 1
    with pytest.raises(Refused, match="already active"):
        operations(store).queue(request("t1", amount="99.00"), T0)


# -- queue many --------------------------------------------------------------------------------


def test_queue_many_writes_every_row_or_none(store: MemoryStore) -> None:
    ops = operations(store)
    rows = [(n, request(f"t{n}")) for n in range(1, 4)]
    bad = (4, request("t4", error_code="card_declined", decline_code="stolen_card"))
    with pytest.raises(InvalidRows) as caught:
        ops.queue_many([*rows, bad], T0)
    assert caught.value.exit_code == 3  # refused by policy, not invalid
    assert caught.value.problems[0][0] == 4 and "never retried" in caught.value.problems[0][1]
    assert store.list_jobs() == [] and store.recent_entries(limit=10) == []
    done = ops.queue_many(rows, T0)
    assert (done.created, done.existing) == (3, 0)
    assert len(store.list_jobs()) == 3


def test_queue_many_counts_repeats_and_names_every_conflict(store: MemoryStore) -> None:
    ops = operations(store)
    queue(store, "active")
    rows = [
        (1, request("new")),
        (2, request("new")),  # the same row twice in one file
        (3, request("active")),  # already queued with these parameters
        (4, request("clash")),
        (5, request("clash", amount="99.00")),
        (6, request("active", amount="99.00")),
    ]
    with pytest.raises(InvalidRows) as caught:
        ops.queue_many(rows, T0, invalid=[(7, "amount: not a number")])
    assert [line for line, _ in caught.value.problems] == [5, 6, 7]
    assert caught.value.exit_code == 2  # one row is invalid outright
    assert {j.transaction_id for j in store.list_jobs()} == {"active"}
    done = ops.queue_many(rows[:4], T0)
    assert (done.created, done.existing) == (2, 2)


def test_queue_many_refuses_when_a_transaction_became_active_meanwhile() -> None:
    store = RacingStore()
    queue(store, "t2")
    store.blind = 1
    with pytest.raises(Refused, match="nothing written"):
        operations(store).queue_many([(1, request("t1")), (2, request("t2"))], T0)
    assert {j.transaction_id for j in store.list_jobs()} == {"t2"}


# -- status and cancel -------------------------------------------------------------------------


def test_status_of_an_unknown_transaction_is_not_found(store: MemoryStore) -> None:
    with pytest.raises(NotFound) as caught:
        operations(store).status("nobody")
    assert caught.value.exit_code == 4


def test_cancel(store: MemoryStore) -> None:
    queue(store, "t1")
    cancelled = operations(store).cancel("t1", T0 + MINUTE)
    assert cancelled.state is JobState.CANCELLED and cancelled.reason == "cancelled by an operator"
    with pytest.raises(Refused, match="already cancelled"):
        operations(store).cancel("t1", T0 + MINUTE)
    with pytest.raises(NotFound):
        operations(store).cancel("nobody", T0)


def test_cancel_of_a_job_mid_attempt_is_refused(store: MemoryStore) -> None:
    queue(store, "t1")
    store.claim(T0, 1, LEASE)
    with pytest.raises(Refused, match="in progress"):
        operations(store).cancel("t1", T0)
    job = store.find("t1")
    assert job is not None and job.state is JobState.RUNNING


class AttemptBetween(MemoryStore):
    """An attempt starts and ends between the operator's look and the cancel."""

    def cancel(self, cancelled: Cancelled) -> Job:
        [claimed] = self.claim(T0, 1, LEASE, job_id=cancelled.job.id)
        result = AttemptResult.failure("network_error")
        decision = POLICY.decide(claimed.job, 1, result, T0)
        self.finish([Finish(claimed, result, decision, T0)])
        return super().cancel(cancelled)


def test_cancel_is_fenced_on_the_job_as_the_operator_saw_it() -> None:
    store = AttemptBetween()
    queue(store, "t1")
    with pytest.raises(Refused, match="changed"):
        operations(store).cancel("t1", T0 + MINUTE)
    job = store.find("t1")
    assert job is not None and job.state is JobState.SCHEDULED and job.attempt_count == 1


# -- retry now ---------------------------------------------------------------------------------


def retrying(store: MemoryStore, clock: ManualClock, processor: Scripted) -> Operations:
    runner = Runner(store, POLICY, processor, clock=clock, lease_for=LEASE)
    return Operations(store, POLICY, execution=runner.execution)


def test_retry_now_attempts_a_job_before_its_time(store: MemoryStore, clock: ManualClock) -> None:
    job = queue(store, "t1", error_code="insufficient_funds")  # due in 24 h
    processor = Scripted()
    result = retrying(store, clock, processor).retry_now("t1", T0)
    assert (result.outcome, result.attempt) == ("succeeded", 1)
    assert processor.keys == [f"payretry:{job.id}:1"]
    found = store.find("t1")
    assert found is not None and found.state is JobState.SUCCEEDED and found.attempt_count == 1


def cancelled(store: MemoryStore) -> None:
    queue(store, "t1")
    operations(store).cancel("t1", T0)


def awaiting_customer(store: MemoryStore) -> None:
    queue(store, "t1")
    [claimed] = store.claim(T0, 1, LEASE)
    action = CustomerAction("cs_1", "https://checkout.example/cs_1", T0 + 60 * MINUTE)
    result = AttemptResult.awaiting_customer(action, "complete checkout")
    store.finish([Finish(claimed, result, POLICY.decide(claimed.job, 1, result, T0), T0)])


def no_attempts_left(store: MemoryStore) -> None:
    template = queue(MemoryStore(), "t1")
    store.insert(Queued(replace(template, attempt_count=2, max_attempts=2)))


def running(store: MemoryStore) -> None:
    queue(store, "t1")
    store.claim(T0, 1, LEASE)


@pytest.mark.parametrize(
    ("arrange", "why"),
    [
        (cancelled, "already cancelled"),
        (awaiting_customer, "checkout session cs_1"),
        (no_attempts_left, "no attempts left"),
        (running, "already in progress"),
    ],
    ids=["final", "awaiting-customer", "no-attempts-left", "running"],
)
def test_retry_now_refuses(
    store: MemoryStore, clock: ManualClock, arrange: Callable[[MemoryStore], None], why: str
) -> None:
    arrange(store)
    before = store.find("t1")
    processor = Scripted()
    with pytest.raises(Refused, match=why) as caught:
        retrying(store, clock, processor).retry_now("t1", T0)
    assert caught.value.exit_code == 3 and processor.requests == []
    assert store.find("t1") == before  # nothing changed


def test_retry_now_after_the_window_closed_abandons_the_job(
    store: MemoryStore, clock: ManualClock
) -> None:
    queue(store, "t1", error_code="processing_error", window="10m")
    later = clock.advance(minutes=11)
    processor = Scripted()
    with pytest.raises(Refused, match="window"):
        retrying(store, clock, processor).retry_now("t1", later)
    job = store.find("t1")
    assert job is not None and job.state is JobState.ABANDONED and processor.requests == []


def test_retry_now_of_an_unknown_transaction_is_not_found(
    store: MemoryStore, clock: ManualClock
) -> None:
    with pytest.raises(NotFound):
        retrying(store, clock, Scripted()).retry_now("nobody", T0)
