"""The Store contract: every store (the in-memory twin, SQLite, PostgreSQL) passes these tests.

Time is passed in; jobs are built directly, so the tests speak only the Store protocol.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, text

from payretry.domain.changes import Cancelled, Claimed, Finish, Queued
from payretry.domain.models import (
    FINAL_STATES,
    AttemptOutcome,
    Job,
    JobState,
    ProcessorRefs,
)
from payretry.domain.money import Money
from payretry.domain.policy import Decision, Outcome, RetryPolicy
from payretry.domain.ports import DuplicateActive, Store
from payretry.domain.results import AttemptResult
from payretry.errors import NotFound, Refused
from payretry.store.sql import SqlStore
from tests.contract.conftest import ContractStore, sql_only
from tests.helpers import seen

NOW = datetime(2026, 11, 22, 12, 0, 0, tzinfo=UTC)
LEASE = timedelta(minutes=5)
ROW = RetryPolicy.standard().rows["processing_error"]


def make_job(
    transaction_id: str = "txn-1",
    *,
    job_id: str | None = None,
    amount_minor: int = 1000,
    currency: str = "USD",
    priority: int | None = None,
    next_retry_at: datetime | None = NOW,
    state: JobState = JobState.SCHEDULED,
    attempt_count: int = 0,
    max_attempts: int = 3,
    expires_at: datetime | None = None,
    user_id: str = "user-1",
    error_code: str = "processing_error",
    created_at: datetime = NOW - timedelta(hours=1),
) -> Job:
    return Job(
        id=job_id or uuid.uuid4().hex,
        transaction_id=transaction_id,
        user_id=user_id,
        money=Money(amount_minor, currency),
        error_code=error_code,
        decline_code=None,
        error_message=None,
        state=state,
        attempt_count=attempt_count,
        max_attempts=max_attempts,
        next_retry_at=next_retry_at,
        created_at=created_at,
        updated_at=created_at,
        expires_at=expires_at,
        priority=amount_minor if priority is None else priority,
        reason="queued by the contract suite",
        policy_code=error_code,
    )


def succeeded(claimed: Claimed, at: datetime, reference: str = "ch_1") -> Finish:
    decision = Decision(Outcome.SUCCEEDED, ROW, "attempt succeeded", None, 3)
    return Finish(claimed, AttemptResult.success(reference), decision, at)


def failed_retry(claimed: Claimed, at: datetime, next_at: datetime) -> Finish:
    decision = Decision(Outcome.RETRY, ROW, "waits before the next attempt", next_at, 3)
    result = AttemptResult.failure("processing_error", None, "simulated processing_error")
    return Finish(claimed, result, decision, at)


def get(store: Store, job: Job) -> Job:
    found = store.get(job.id)
    assert found is not None, f"job {job.id} vanished"
    return found


def transactions(claimed: list[Claimed]) -> list[str]:
    return [c.job.transaction_id for c in claimed]


# -- insert, get, find -----------------------------------------------------------------------


def test_insert_round_trips_every_field(contract_store: Store) -> None:
    job = Job(
        id=uuid.uuid4().hex,
        transaction_id="txn-rt",
        user_id="user-rt",
        money=Money(123456, "KWD"),
        error_code="card_declined",
        decline_code="insufficient_funds",
        error_message="declined [redacted]",
        state=JobState.SCHEDULED,
        attempt_count=1,
        max_attempts=2,
        next_retry_at=NOW + timedelta(hours=24),
        created_at=NOW,
        updated_at=NOW + timedelta(seconds=1),
        expires_at=NOW + timedelta(days=3),
        priority=-7,
        refs=ProcessorRefs("pi_1", "cus_1", "pm_1", "cs_1"),
        metadata={"simulate": "succeeded", "order": "42"},
        reason="why",
        policy_code="insufficient_funds",
    )
    stored = contract_store.insert(Queued(job))
    assert stored.seq > 0
    assert stored == get(contract_store, job)
    for name in (
        "id",
        "transaction_id",
        "user_id",
        "money",
        "error_code",
        "decline_code",
        "error_message",
        "state",
        "attempt_count",
        "max_attempts",
        "next_retry_at",
        "created_at",
        "updated_at",
        "expires_at",
        "priority",
        "refs",
        "reason",
        "policy_code",
    ):
        assert getattr(stored, name) == getattr(job, name), name
    assert dict(stored.metadata) == {"simulate": "succeeded", "order": "42"}
    assert stored.next_retry_at is not None and stored.next_retry_at.tzinfo is not None
    assert stored.lease_token is None and stored.lease_expires_at is None
    assert stored.attempts == ()


def test_get_and_find_of_unknown_return_none(contract_store: Store) -> None:
    assert contract_store.get("no-such-job") is None
    assert contract_store.find("no-such-transaction") is None


def test_find_prefers_the_active_job_over_a_later_final_one(contract_store: Store) -> None:
    old = contract_store.insert(Queued(make_job("txn-f", state=JobState.CANCELLED)))
    active = contract_store.insert(Queued(make_job("txn-f")))
    later_final = contract_store.insert(Queued(make_job("txn-f", state=JobState.EXHAUSTED)))
    assert later_final.seq > active.seq > old.seq
    found = contract_store.find("txn-f")
    assert found is not None and found.id == active.id


def test_find_without_an_active_job_returns_the_latest(contract_store: Store) -> None:
    contract_store.insert(Queued(make_job("txn-l", state=JobState.FAILED)))
    latest = contract_store.insert(Queued(make_job("txn-l", state=JobState.CANCELLED)))
    contract_store.insert(Queued(make_job("txn-other")))
    found = contract_store.find("txn-l")
    assert found is not None and found.id == latest.id


def test_find_includes_attempts(contract_store: Store) -> None:
    job = contract_store.insert(Queued(make_job("txn-a")))
    [claimed] = contract_store.claim(NOW, 1, LEASE)
    found = contract_store.find("txn-a")
    assert found is not None and found.id == job.id
    assert [a.idempotency_key for a in found.attempts] == [claimed.idempotency_key]
    without = contract_store.get(job.id, with_attempts=False)
    assert without is not None and without.attempts == ()


# -- one active job per transaction ------------------------------------------------------------


@pytest.mark.parametrize("second_state", [JobState.SCHEDULED, JobState.RUNNING])
def test_second_active_job_for_a_transaction_is_refused(
    contract_store: Store, second_state: JobState
) -> None:
    first = contract_store.insert(Queued(make_job("txn-d")))
    with pytest.raises(DuplicateActive):
        contract_store.insert(Queued(make_job("txn-d", state=second_state)))
    assert [j.id for j in contract_store.list_jobs()] == [first.id]


def test_running_job_blocks_a_new_active_job(contract_store: Store) -> None:
    contract_store.insert(Queued(make_job("txn-r")))
    assert len(contract_store.claim(NOW, 1, LEASE)) == 1
    with pytest.raises(DuplicateActive):
        contract_store.insert(Queued(make_job("txn-r")))


def test_new_job_allowed_once_the_first_is_final(contract_store: Store) -> None:
    first = contract_store.insert(Queued(make_job("txn-n")))
    contract_store.cancel(Cancelled(seen(contract_store, first.id), NOW, "operator"))
    second = contract_store.insert(Queued(make_job("txn-n")))
    assert second.id != first.id
    assert contract_store.active_for(["txn-n"])["txn-n"].id == second.id


def test_insert_many_is_all_or_nothing(contract_store: Store) -> None:
    contract_store.insert(Queued(make_job("txn-m2")))
    with pytest.raises(DuplicateActive):
        contract_store.insert_many(
            [Queued(j) for j in [make_job("txn-m1"), make_job("txn-m2"), make_job("txn-m3")]]
        )
    assert {j.transaction_id for j in contract_store.list_jobs()} == {"txn-m2"}
    contract_store.insert_many([Queued(j) for j in [make_job(f"txn-b{i}") for i in range(7)]])
    assert len(contract_store.list_jobs(limit=100)) == 8


def test_insert_many_stores_a_file_in_claim_order(contract_store: Store) -> None:
    """Highest priority first, then the earliest first retry, a file's order among equals: the
    order a claim takes them, so a run's batches change neighbouring rows."""
    later = NOW + timedelta(hours=1)
    given = [
        make_job("low", amount_minor=100),
        make_job("high-later", amount_minor=900, next_retry_at=later),
        make_job("mid-1", amount_minor=500),
        make_job("high", amount_minor=900),
        make_job("mid-2", amount_minor=500),
    ]
    contract_store.insert_many([Queued(j) for j in given])
    expected = ["high", "high-later", "mid-1", "mid-2", "low"]
    by_seq = sorted(contract_store.list_jobs(limit=10), key=lambda j: j.seq)
    assert [j.transaction_id for j in by_seq] == expected
    claimed = contract_store.claim(later, 10, LEASE)
    assert transactions(claimed) == expected


def test_active_for_and_succeeded_for(contract_store: Store) -> None:
    active = contract_store.insert(Queued(make_job("txn-1")))
    contract_store.insert(Queued(make_job("txn-2", state=JobState.SUCCEEDED)))
    contract_store.insert(Queued(make_job("txn-3", state=JobState.FAILED)))
    found = contract_store.active_for(["txn-1", "txn-2", "txn-3", "txn-4"])
    assert list(found) == ["txn-1"] and found["txn-1"].id == active.id
    assert contract_store.succeeded_for(["txn-1", "txn-2", "txn-3", "txn-4"]) == {"txn-2"}
    assert contract_store.active_for([]) == {} and contract_store.succeeded_for([]) == set()


# -- claim ------------------------------------------------------------------------------------


@pytest.fixture
def queue_of_six(contract_store: Store) -> Store:
    """Four due jobs in a known order, one not yet due, one final."""
    minute = timedelta(minutes=1)
    contract_store.insert(Queued(make_job("low", priority=100, next_retry_at=NOW - minute)))
    contract_store.insert(
        Queued(make_job("high-late", priority=500, next_retry_at=NOW - 10 * minute))
    )
    # Same priority and due time: queue order decides (ids chosen so id order disagrees).
    contract_store.insert(
        Queued(
            make_job("high-first", job_id="f" * 32, priority=500, next_retry_at=NOW - 20 * minute)
        )
    )
    contract_store.insert(
        Queued(
            make_job("high-second", job_id="0" * 32, priority=500, next_retry_at=NOW - 20 * minute)
        )
    )
    contract_store.insert(Queued(make_job("not-due", priority=10_000, next_retry_at=NOW + minute)))
    contract_store.insert(
        Queued(
            make_job("final", priority=10_000, next_retry_at=NOW - minute, state=JobState.SUCCEEDED)
        )
    )
    return contract_store


ORDER = ["high-first", "high-second", "high-late", "low"]


def test_claim_order_priority_then_due_time_then_queue_order(queue_of_six: Store) -> None:
    assert transactions(queue_of_six.claim(NOW, 10, LEASE)) == ORDER
    assert queue_of_six.claim(NOW, 10, LEASE) == []


def test_claim_honours_the_limit_and_continues_in_order(queue_of_six: Store) -> None:
    assert transactions(queue_of_six.claim(NOW, 2, LEASE)) == ORDER[:2]
    assert transactions(queue_of_six.claim(NOW, 1, LEASE)) == ORDER[2:3]
    assert transactions(queue_of_six.claim(NOW, 5, LEASE)) == ORDER[3:]


def test_due_preview_matches_claim_order_and_changes_nothing(queue_of_six: Store) -> None:
    assert [j.transaction_id for j in queue_of_six.due_preview(NOW, 10)] == ORDER
    assert [j.transaction_id for j in queue_of_six.due_preview(NOW, 2)] == ORDER[:2]
    assert queue_of_six.list_jobs(state=JobState.RUNNING) == []
    assert transactions(queue_of_six.claim(NOW, 10, LEASE)) == ORDER


def test_claim_skips_not_yet_due_and_final_jobs(queue_of_six: Store) -> None:
    queue_of_six.claim(NOW, 10, LEASE)
    later = queue_of_six.claim(NOW + timedelta(minutes=1), 10, LEASE)
    assert transactions(later) == ["not-due"]  # due exactly at its next retry time
    final = queue_of_six.find("final")
    assert final is not None and final.state is JobState.SUCCEEDED and final.attempts == ()


def test_claim_marks_running_under_a_lease_and_writes_a_pending_attempt(
    contract_store: Store,
) -> None:
    first = contract_store.insert(Queued(make_job("txn-c1", priority=2)))
    second = contract_store.insert(Queued(make_job("txn-c2", priority=1, attempt_count=2)))
    claimed = contract_store.claim(NOW, 10, LEASE)
    assert [c.job.id for c in claimed] == [first.id, second.id]
    assert [c.attempt_number for c in claimed] == [1, 3]
    assert [c.idempotency_key for c in claimed] == [
        f"payretry:{first.id}:1",
        f"payretry:{second.id}:3",
    ]
    for c in claimed:
        assert c.lease_token
        assert c.job.state is JobState.RUNNING
        stored = get(contract_store, c.job)
        assert stored.state is JobState.RUNNING
        assert stored.lease_token == c.lease_token
        assert stored.lease_expires_at == NOW + LEASE
        assert stored.attempt_count == c.attempt_number - 1  # counted when it finishes
        [attempt] = stored.attempts
        assert attempt.number == c.attempt_number
        assert attempt.idempotency_key == c.idempotency_key
        assert attempt.outcome is AttemptOutcome.PENDING
        assert attempt.started_at == NOW
        assert attempt.finished_at is None


def test_claim_by_job_id_takes_that_job_even_before_it_is_due(contract_store: Store) -> None:
    other = contract_store.insert(Queued(make_job("txn-due", priority=9)))
    later = contract_store.insert(
        Queued(make_job("txn-later", next_retry_at=NOW + timedelta(days=1)))
    )
    [claimed] = contract_store.claim(NOW, 1, LEASE, job_id=later.id)
    assert claimed.job.id == later.id and claimed.idempotency_key == f"payretry:{later.id}:1"
    assert get(contract_store, other).state is JobState.SCHEDULED
    assert contract_store.claim(NOW, 1, LEASE, job_id=later.id) == []  # already running
    assert contract_store.claim(NOW, 1, LEASE, job_id="no-such-job") == []


def test_two_claims_never_share_a_job(contract_store: Store) -> None:
    contract_store.insert_many([Queued(j) for j in [make_job(f"txn-{i}") for i in range(10)]])
    first = contract_store.claim(NOW, 6, LEASE)
    second = contract_store.claim(NOW, 6, LEASE)
    assert len(first) == 6 and len(second) == 4
    assert not {c.job.id for c in first} & {c.job.id for c in second}
    assert len({c.lease_token for c in first} | {c.lease_token for c in second}) == 2


# -- finish, fencing, rescue, release -----------------------------------------------------------


def test_finish_success_records_the_outcome(contract_store: Store) -> None:
    job = contract_store.insert(Queued(make_job("txn-s")))
    [claimed] = contract_store.claim(NOW, 1, LEASE)
    done_at = NOW + timedelta(seconds=2)
    assert contract_store.finish([succeeded(claimed, done_at, "ch_42")]) == [True]
    stored = get(contract_store, job)
    assert stored.state is JobState.SUCCEEDED
    assert stored.attempt_count == 1
    assert stored.next_retry_at is None
    assert stored.lease_token is None and stored.lease_expires_at is None
    assert stored.updated_at == done_at
    [attempt] = stored.attempts
    assert attempt.outcome is AttemptOutcome.SUCCEEDED
    assert attempt.reference == "ch_42"
    assert attempt.finished_at == done_at
    assert attempt.decision == "succeeded"


def test_finish_failure_reschedules_and_the_next_claim_uses_the_next_key(
    contract_store: Store,
) -> None:
    job = contract_store.insert(Queued(make_job("txn-f")))
    [claimed] = contract_store.claim(NOW, 1, LEASE)
    next_at = NOW + timedelta(minutes=5)
    assert contract_store.finish([failed_retry(claimed, NOW, next_at)]) == [True]
    stored = get(contract_store, job)
    assert stored.state is JobState.SCHEDULED
    assert stored.attempt_count == 1
    assert stored.next_retry_at == next_at
    [attempt] = stored.attempts
    assert attempt.outcome is AttemptOutcome.FAILED
    assert attempt.error_code == "processing_error"
    assert attempt.decision == "rescheduled" and attempt.next_retry_at == next_at
    assert contract_store.claim(next_at - timedelta(seconds=1), 1, LEASE) == []
    [again] = contract_store.claim(next_at, 1, LEASE)
    assert again.attempt_number == 2 and again.idempotency_key == f"payretry:{job.id}:2"
    assert [a.number for a in get(contract_store, job).attempts] == [1, 2]


def test_rescue_returns_expired_leases_without_counting_an_attempt(contract_store: Store) -> None:
    job = contract_store.insert(Queued(make_job("txn-x")))
    [first] = contract_store.claim(NOW, 1, LEASE)
    assert contract_store.rescue(NOW + LEASE - timedelta(seconds=1)).rescued == 0
    assert get(contract_store, job).state is JobState.RUNNING
    later = NOW + LEASE + timedelta(seconds=1)
    assert contract_store.rescue(later).rescued == 1
    rescued = get(contract_store, job)
    assert rescued.state is JobState.SCHEDULED
    assert rescued.attempt_count == 0
    assert rescued.lease_token is None and rescued.lease_expires_at is None
    assert [a.outcome for a in rescued.attempts] == [AttemptOutcome.PENDING]
    assert contract_store.rescue(later).rescued == 0
    [second] = contract_store.claim(later, 1, LEASE)
    assert second.attempt_number == first.attempt_number == 1
    assert second.idempotency_key == first.idempotency_key == f"payretry:{job.id}:1"
    assert second.lease_token != first.lease_token
    reclaimed = get(contract_store, job)
    assert [a.idempotency_key for a in reclaimed.attempts] == [first.idempotency_key]


def test_an_attempt_rescued_too_often_is_parked_with_its_key_kept(contract_store: Store) -> None:
    """A poison job: its runner dies on every attempt. After `max_rescues` rescues of the same
    attempt, the next lapse parks it; nothing automatic takes it again, its attempt keeps its
    row and key, an operator's claim by id re-sends that same key, and it stays active."""
    job = contract_store.insert(Queued(make_job("txn-poison")))
    at = NOW
    for n in range(1, 3):
        contract_store.claim(at, 1, LEASE)
        at += LEASE + timedelta(seconds=1)
        rescue = contract_store.rescue(at, max_rescues=2)
        assert rescue.rescued == 1 and rescue.parked == ()
        assert get(contract_store, job).rescues == n
    [last] = contract_store.claim(at, 1, LEASE)
    at += LEASE + timedelta(seconds=1)
    rescue = contract_store.rescue(at, max_rescues=2)
    assert rescue.rescued == 0 and [p.id for p in rescue.parked] == [job.id]
    parked = get(contract_store, job)
    assert parked.state is JobState.PARKED and parked.next_retry_at is None
    assert parked.lease_token is None and parked.attempt_count == 0
    assert "sent 3 times without an outcome" in (parked.reason or "")
    assert [(a.number, a.outcome) for a in parked.attempts] == [(1, AttemptOutcome.PENDING)]
    assert contract_store.claim(at + timedelta(days=1), 10, LEASE) == []  # never automatic
    with pytest.raises(DuplicateActive):  # its attempt may have charged: no second job
        contract_store.insert(Queued(make_job("txn-poison")))
    [again] = contract_store.claim(at, 1, LEASE, job_id=job.id)  # an operator's retry
    assert again.idempotency_key == last.idempotency_key == f"payretry:{job.id}:1"
    assert contract_store.finish([succeeded(again, at)]) == [True]
    done = get(contract_store, job)
    assert done.state is JobState.SUCCEEDED and done.rescues == 0


def test_a_parked_job_can_be_cancelled(contract_store: Store) -> None:
    job = contract_store.insert(Queued(make_job("txn-parked")))
    contract_store.claim(NOW, 1, LEASE)
    later = NOW + LEASE + timedelta(seconds=1)
    assert contract_store.rescue(later, max_rescues=0).parked
    cancelled = contract_store.cancel(Cancelled(seen(contract_store, job.id), later, "operator"))
    assert cancelled.state is JobState.CANCELLED


def test_rescue_leaves_unexpired_leases_and_other_states_alone(contract_store: Store) -> None:
    contract_store.insert(Queued(make_job("txn-short")))
    contract_store.insert(Queued(make_job("txn-long", priority=1)))
    contract_store.insert(Queued(make_job("txn-waiting", next_retry_at=NOW + timedelta(days=1))))
    contract_store.claim(NOW, 1, timedelta(minutes=1))
    contract_store.claim(NOW, 1, timedelta(hours=1))
    assert contract_store.rescue(NOW + timedelta(minutes=2)).rescued == 1
    states = {j.transaction_id: j.state for j in contract_store.list_jobs()}
    assert states == {
        "txn-short": JobState.SCHEDULED,
        "txn-long": JobState.RUNNING,
        "txn-waiting": JobState.SCHEDULED,
    }


def test_stale_lease_cannot_finish_but_the_new_holder_can(contract_store: Store) -> None:
    job = contract_store.insert(Queued(make_job("txn-fence")))
    [stale] = contract_store.claim(NOW, 1, LEASE)
    later = NOW + LEASE + timedelta(seconds=1)
    contract_store.rescue(later)
    [fresh] = contract_store.claim(later, 1, LEASE)
    before = get(contract_store, job)

    assert contract_store.finish([succeeded(stale, later)]) == [False]
    assert get(contract_store, job) == before  # neither the job nor its attempt changed
    assert contract_store.release([stale], later) == 0
    assert get(contract_store, job) == before

    retry_at = later + timedelta(minutes=5)
    assert contract_store.finish([failed_retry(fresh, later, retry_at)]) == [True]
    assert contract_store.finish([succeeded(stale, later)]) == [False]  # still fenced
    stored = get(contract_store, job)
    assert stored.state is JobState.SCHEDULED and stored.next_retry_at == retry_at
    assert stored.attempt_count == 1
    [attempt] = stored.attempts
    assert attempt.outcome is AttemptOutcome.FAILED and attempt.reference is None


def test_finish_batch_applies_only_the_held_leases(contract_store: Store) -> None:
    lost = contract_store.insert(Queued(make_job("txn-lost", priority=2)))
    held = contract_store.insert(Queued(make_job("txn-held", priority=1)))
    [stale] = contract_store.claim(NOW, 1, timedelta(seconds=30))
    [keep] = contract_store.claim(NOW, 1, LEASE)
    later = NOW + timedelta(minutes=1)
    contract_store.rescue(later)
    [fresh] = contract_store.claim(later, 1, LEASE)
    assert fresh.job.id == lost.id
    assert contract_store.finish([succeeded(stale, later), succeeded(keep, later)]) == [
        False,
        True,
    ]
    assert get(contract_store, held).state is JobState.SUCCEEDED
    lost_now = get(contract_store, lost)
    assert lost_now.state is JobState.RUNNING and lost_now.lease_token == fresh.lease_token
    assert contract_store.finish([]) == []


def test_release_returns_unstarted_jobs_and_removes_their_attempts(contract_store: Store) -> None:
    contract_store.insert_many(
        [Queued(j) for j in [make_job(f"txn-{i}", priority=10 - i) for i in range(3)]]
    )
    claimed = contract_store.claim(NOW, 3, LEASE)
    assert contract_store.release(claimed[1:], NOW + timedelta(seconds=1)) == 2
    for c in claimed[1:]:
        back = get(contract_store, c.job)
        assert back.state is JobState.SCHEDULED
        assert back.attempts == ()
        assert back.attempt_count == 0
        assert back.lease_token is None and back.lease_expires_at is None
    still = get(contract_store, claimed[0].job)
    assert still.state is JobState.RUNNING and len(still.attempts) == 1
    again = contract_store.claim(NOW + timedelta(seconds=2), 10, LEASE)
    assert [c.idempotency_key for c in again] == [c.idempotency_key for c in claimed[1:]]
    assert contract_store.release([], NOW) == 0


# -- windows, cancel ----------------------------------------------------------------------------


def test_abandon_expired_closes_only_lapsed_scheduled_jobs(contract_store: Store) -> None:
    lapsed = contract_store.insert(
        Queued(make_job("txn-lapsed", expires_at=NOW - timedelta(seconds=1)))
    )
    contract_store.insert(Queued(make_job("txn-open", expires_at=NOW + timedelta(hours=1))))
    contract_store.insert(Queued(make_job("txn-none")))
    contract_store.insert(
        Queued(make_job("txn-final", state=JobState.FAILED, expires_at=NOW - timedelta(hours=1)))
    )
    running = contract_store.insert(
        Queued(make_job("txn-running", expires_at=NOW + timedelta(seconds=30), next_retry_at=NOW))
    )
    assert contract_store.claim(NOW, 1, LEASE, job_id=running.id)

    abandoned = contract_store.abandon_expired(NOW + timedelta(minutes=1))
    assert [j.id for j in abandoned] == [lapsed.id]
    assert abandoned[0].state is JobState.ABANDONED
    stored = get(contract_store, lapsed)
    assert stored.state is JobState.ABANDONED and stored.reason and stored.next_retry_at is None
    states = {j.transaction_id: j.state for j in contract_store.list_jobs()}
    assert states == {
        "txn-lapsed": JobState.ABANDONED,
        "txn-open": JobState.SCHEDULED,
        "txn-none": JobState.SCHEDULED,
        "txn-final": JobState.FAILED,
        "txn-running": JobState.RUNNING,  # its runner decides; the window is checked there
    }
    assert contract_store.abandon_expired(NOW + timedelta(minutes=1)) == []


def test_cancel_scheduled_job(contract_store: Store) -> None:
    job = contract_store.insert(Queued(make_job("txn-cancel")))
    cancelled = contract_store.cancel(
        Cancelled(seen(contract_store, job.id), NOW, "operator asked")
    )
    assert cancelled.state is JobState.CANCELLED
    assert cancelled.reason == "operator asked"
    assert cancelled.next_retry_at is None
    assert cancelled.updated_at == NOW
    assert contract_store.claim(NOW + timedelta(days=1), 10, LEASE) == []


def test_cancel_of_running_final_or_unknown_job_is_refused(contract_store: Store) -> None:
    running = contract_store.insert(Queued(make_job("txn-running")))
    contract_store.claim(NOW, 1, LEASE)
    with pytest.raises(Refused):
        contract_store.cancel(Cancelled(seen(contract_store, running.id), NOW, "operator"))
    assert get(contract_store, running).state is JobState.RUNNING
    final = contract_store.insert(Queued(make_job("txn-final", state=JobState.SUCCEEDED)))
    with pytest.raises(Refused):
        contract_store.cancel(Cancelled(seen(contract_store, final.id), NOW, "operator"))
    assert get(contract_store, final).state is JobState.SUCCEEDED
    with pytest.raises(NotFound):
        contract_store.cancel(Cancelled(seen(contract_store, "no-such-job"), NOW, "operator"))


@pytest.mark.parametrize("state", sorted(FINAL_STATES))
def test_final_states_never_change(contract_store: Store, state: JobState) -> None:
    job = contract_store.insert(
        Queued(
            make_job(
                "txn-final",
                state=state,
                next_retry_at=NOW - timedelta(hours=1),
                expires_at=NOW - timedelta(minutes=1),
            )
        )
    )
    far = NOW + timedelta(days=30)
    assert contract_store.claim(far, 10, LEASE) == []
    assert contract_store.claim(far, 10, LEASE, job_id=job.id) == []
    assert contract_store.rescue(far).rescued == 0
    assert contract_store.abandon_expired(far) == []
    with pytest.raises(Refused):
        contract_store.cancel(Cancelled(seen(contract_store, job.id), far, "operator"))
    forged = Claimed(job, 1, f"payretry:{job.id}:1", "forged-token")
    assert contract_store.finish([succeeded(forged, far)]) == [False]
    assert contract_store.release([forged], far) == 0
    assert get(contract_store, job) == job


# -- reading many -------------------------------------------------------------------------------


def test_list_jobs_filters(contract_store: Store) -> None:
    a = contract_store.insert(Queued(make_job("a", user_id="u1", priority=1, next_retry_at=NOW)))
    b = contract_store.insert(Queued(make_job("b", user_id="u2", priority=5, next_retry_at=NOW)))
    c = contract_store.insert(
        Queued(make_job("c", user_id="u1", priority=9, next_retry_at=NOW + timedelta(hours=1)))
    )
    d = contract_store.insert(Queued(make_job("d", user_id="u1", state=JobState.SUCCEEDED)))
    ids = [j.id for j in contract_store.list_jobs()]
    assert ids == [d.id, c.id, b.id, a.id]  # newest first
    assert [j.id for j in contract_store.list_jobs(limit=2)] == [d.id, c.id]
    assert [j.id for j in contract_store.list_jobs(user_id="u1")] == [d.id, c.id, a.id]
    assert [j.id for j in contract_store.list_jobs(state=JobState.SUCCEEDED)] == [d.id]
    assert [j.id for j in contract_store.list_jobs(state=JobState.SCHEDULED, user_id="u1")] == [
        c.id,
        a.id,
    ]
    assert [j.id for j in contract_store.list_jobs(due_at=NOW)] == [b.id, a.id]  # claim order
    assert [j.id for j in contract_store.list_jobs(due_at=NOW, user_id="u1")] == [a.id]
    assert [j.id for j in contract_store.list_jobs(due_at=NOW + timedelta(hours=1))] == [
        c.id,
        b.id,
        a.id,
    ]
    assert contract_store.list_jobs(user_id="nobody") == []


def test_stats(contract_store: Store) -> None:
    minute = timedelta(minutes=1)
    contract_store.insert(
        Queued(make_job("due", amount_minor=1000, next_retry_at=NOW - 10 * minute))
    )
    retried = contract_store.insert(Queued(make_job("retried", amount_minor=2000)))
    net = "network_error"
    later = NOW + 120 * minute
    contract_store.insert(
        Queued(
            make_job("later", amount_minor=700, currency="EUR", next_retry_at=later, error_code=net)
        )
    )
    contract_store.insert(
        Queued(
            make_job(
                "paid-before",
                amount_minor=5000,
                currency="JPY",
                state=JobState.SUCCEEDED,
                error_code=net,
            )
        )
    )
    paid = contract_store.insert(
        Queued(make_job("paid", amount_minor=300, error_code="insufficient_funds"))
    )
    running = contract_store.insert(
        Queued(make_job("running", amount_minor=400, error_code="rate_limit_exceeded"))
    )
    [c_retried] = contract_store.claim(NOW, 1, LEASE, job_id=retried.id)
    [c_paid] = contract_store.claim(NOW, 1, LEASE, job_id=paid.id)
    assert contract_store.claim(NOW, 1, LEASE, job_id=running.id)
    assert contract_store.finish(
        [failed_retry(c_retried, NOW, NOW + 30 * minute), succeeded(c_paid, NOW)]
    ) == [True, True]

    stats = contract_store.stats(NOW)
    assert stats.total == 6
    assert dict(stats.by_state) == {"scheduled": 3, "succeeded": 2, "running": 1}
    assert dict(stats.pending_amount_minor) == {"EUR": 700, "USD": 1000 + 2000 + 400}
    assert dict(stats.by_error_code) == {
        "processing_error": 3,  # two jobs and one failed attempt
        "network_error": 2,
        "insufficient_funds": 1,
        "rate_limit_exceeded": 1,
    }
    assert dict(stats.attempts_by_outcome) == {"failed": 1, "succeeded": 1, "pending": 1}
    assert dict(stats.success_by_attempt) == {1: (1, 2)}
    assert stats.due_now == 1
    assert stats.due_next_hour == 1
    assert stats.oldest_due_at == NOW - 10 * minute


def test_stats_of_an_empty_store(contract_store: Store) -> None:
    stats = contract_store.stats(NOW)
    assert stats.total == 0
    assert dict(stats.by_state) == {} and dict(stats.pending_amount_minor) == {}
    assert stats.due_now == 0 and stats.due_next_hour == 0 and stats.oldest_due_at is None


# -- SQLite: the hot queries use indexes ----------------------------------------------------------


@pytest.fixture
def sqlite_store(contract_store: ContractStore) -> SqlStore:
    store = sql_only(contract_store, "EXPLAIN QUERY PLAN reads SQLite's plans")
    if store.dialect != "sqlite":
        pytest.skip("EXPLAIN QUERY PLAN checks are SQLite's")
    return store


@pytest.fixture
def captured_selects(sqlite_store: SqlStore) -> Iterator[list[tuple[str, Any]]]:
    """Every SELECT the store sends to SQLite, with its parameters."""
    seen: list[tuple[str, Any]] = []

    def record(
        conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool
    ) -> None:
        if statement.lstrip().upper().startswith("SELECT") and not many:
            seen.append((statement, parameters))

    event.listen(sqlite_store.engine, "before_cursor_execute", record)
    yield seen
    event.remove(sqlite_store.engine, "before_cursor_execute", record)


def _plans(store: SqlStore, selects: list[tuple[str, Any]]) -> list[tuple[str, list[str]]]:
    plans = []
    with store.engine.connect() as conn:
        for statement, parameters in selects:
            rows = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters).all()
            plans.append((statement, [str(row[-1]) for row in rows]))
        conn.rollback()
    return plans


def _touching_jobs(plans: list[tuple[str, list[str]]]) -> list[tuple[str, list[str]]]:
    return [(s, p) for s, p in plans if "FROM retry_jobs" in s]


def _assert_indexed(plans: list[tuple[str, list[str]]]) -> None:
    assert plans
    for statement, lines in plans:
        on_jobs = [line for line in lines if "retry_jobs" in line]
        assert on_jobs, (statement, lines)
        for line in on_jobs:
            assert "INDEX" in line, f"{statement}\n-> {line}"
            assert not line.startswith("SCAN retry_jobs") or "USING" in line


def test_claim_and_due_preview_walk_the_due_index(
    sqlite_store: SqlStore, captured_selects: list[tuple[str, Any]]
) -> None:
    sqlite_store.insert_many(
        [Queued(j) for j in [make_job(f"txn-{i}", priority=i) for i in range(50)]]
    )
    with sqlite_store.engine.begin() as conn:
        conn.execute(text("ANALYZE"))
    captured_selects.clear()
    assert len(sqlite_store.claim(NOW, 5, LEASE)) == 5
    sqlite_store.due_preview(NOW, 5)
    plans = _touching_jobs(_plans(sqlite_store, captured_selects))
    due = [p for p in plans if "next_retry_at <=" in p[0]]
    assert len(due) == 2, plans
    _assert_indexed(due)
    for statement, lines in due:
        # The index gives the order, so the claim stops at the limit instead of sorting.
        assert not any("TEMP B-TREE" in line for line in lines), (statement, lines)
        assert any("ix_retry_jobs_due" in line for line in lines), (statement, lines)


@pytest.mark.parametrize("batch", [1, 3, 500])
def test_transaction_lookups_search_by_transaction_id(
    sqlite_store: SqlStore, captured_selects: list[tuple[str, Any]], batch: int
) -> None:
    """Not by state: a search on `state = 'succeeded'` walks every paid job ever kept."""
    sqlite_store.insert_many([Queued(j) for j in [make_job(f"txn-{i}") for i in range(600)]])
    sqlite_store.insert_many(
        [Queued(j) for j in [make_job(f"paid-{i}", state=JobState.SUCCEEDED) for i in range(600)]]
    )
    ids = [f"txn-{i}" for i in range(batch)]
    captured_selects.clear()
    assert sqlite_store.find("txn-0") is not None
    assert set(sqlite_store.active_for(ids)) == set(ids)
    assert sqlite_store.succeeded_for([*ids, "paid-1"]) == {"paid-1"}
    plans = _touching_jobs(_plans(sqlite_store, captured_selects))
    by_transaction = [p for p in plans if "transaction_id" in p[0].split("WHERE", 1)[-1]]
    assert len(by_transaction) >= 3, plans  # find, active_for, succeeded_for (chunked)
    _assert_indexed(by_transaction)
    for statement, lines in by_transaction:
        assert any("(transaction_id=?)" in line for line in lines), (statement, lines)


def test_stats_reads_pending_amounts_from_the_active_jobs_index(
    sqlite_store: SqlStore, captured_selects: list[tuple[str, Any]]
) -> None:
    """The pending amounts come from the active jobs' own index (migration 0011), which
    SQLite uses only when the query's predicate is the index's word for word: re-spelled,
    `stats` would scan every finished job ever kept."""
    sqlite_store.insert_many([Queued(j) for j in [make_job(f"txn-{i}") for i in range(60)]])
    sqlite_store.insert_many(
        [Queued(j) for j in [make_job(f"paid-{i}", state=JobState.SUCCEEDED) for i in range(600)]]
    )
    with sqlite_store.engine.begin() as conn:
        conn.execute(text("ANALYZE"))
    captured_selects.clear()
    assert sum(sqlite_store.stats(NOW).pending_amount_minor.values()) > 0
    plans = _touching_jobs(_plans(sqlite_store, captured_selects))
    pending = [p for p in plans if "sum(retry_jobs.amount_minor)" in p[0]]
    assert pending, plans
    for statement, lines in pending:
        assert any("ix_retry_jobs_active_stats" in line for line in lines), (statement, lines)
