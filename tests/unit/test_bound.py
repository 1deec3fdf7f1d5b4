"""The bounded queue's pure rule (domain/bound.py): who is evicted, who is refused, and what an
eviction tells the world; then the service's intake on the in-memory store."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from payretry.domain.bound import Evicted, QueueBound, QueueFull, evictable, eviction_order
from payretry.domain.events import EventType
from payretry.domain.models import TRANSITIONS, Job, JobState, NewJob, check_transition
from payretry.domain.policy import RetryPolicy
from payretry.errors import InvalidRows, Refused
from payretry.service.explain import explain
from payretry.service.intake import new_job
from payretry.service.operations import Operations
from payretry.testing import MemoryStore
from tests.contract.test_store_contract import make_job

NOW = datetime(2026, 11, 22, 12, 0, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def job(name: str, priority: int, hours: int = 1, seq: int = 0, **changes: object) -> Job:
    made = make_job(name, job_id=f"id-{name}", priority=priority, next_retry_at=NOW + hours * HOUR)
    return replace(made, seq=seq, **changes)  # type: ignore[arg-type]


def test_evicted_is_a_final_state_reached_only_from_scheduled() -> None:
    assert JobState.EVICTED.final and len(JobState.EVICTED.value) <= 16
    check_transition(JobState.SCHEDULED, JobState.EVICTED)
    for state in JobState:
        if state is not JobState.SCHEDULED:
            assert JobState.EVICTED not in TRANSITIONS[state], state
    with pytest.raises(Refused):
        check_transition(JobState.RUNNING, JobState.EVICTED)


def test_the_eviction_order_lowest_priority_then_latest_retry_then_newest() -> None:
    jobs = [
        job("a", 5, hours=1, seq=1),
        job("b", 5, hours=3, seq=2),
        job("c", 5, hours=3, seq=3),
        job("d", 1, hours=1, seq=4),
        job("e", 9, hours=9, seq=5),
    ]
    assert [j.transaction_id for j in sorted(jobs, key=eviction_order)] == ["d", "c", "b", "a", "e"]


def test_only_a_scheduled_job_without_an_unanswered_attempt_is_evictable() -> None:
    assert evictable(job("a", 1))
    assert not evictable(job("a", 1, rescues=1))
    for state in (JobState.RUNNING, JobState.AWAITING_PAYER, JobState.PARKED, JobState.FAILED):
        assert not evictable(job("a", 1, state=state))


@pytest.mark.parametrize(
    ("active", "incoming", "needed"), [(0, 1, 0), (2, 1, 0), (3, 1, 1), (2, 5, 4), (9, 2, 2)]
)
def test_evictions_needed_at_most_one_per_new_job(active: int, incoming: int, needed: int) -> None:
    assert QueueBound(3).evictions(active, incoming) == needed


def test_a_bound_must_be_at_least_one() -> None:
    with pytest.raises(ValueError):
        QueueBound(0)


def test_a_higher_job_evicts_the_lowest_and_says_why() -> None:
    new = job("new", 7)
    lowest = [job("low", 2, hours=5), job("mid", 4)]
    (evicted,) = QueueBound(3).admit([new], 3, lowest, NOW)
    assert isinstance(evicted, Evicted) and evicted.by is new
    stored = evicted.job
    assert stored.transaction_id == "low" and stored.state is JobState.EVICTED
    assert stored.next_retry_at is None and stored.updated_at == NOW
    assert stored.reason is not None and "id-new" in stored.reason and "priority 2" in stored.reason
    entry = evicted.entry
    assert entry.kind is EventType.EVICTED and entry.attempt == 1
    assert entry.data["evicted_by"] == "id-new" and entry.data["max_active"] == 3
    head, note = entry.events()
    assert head.data["state"] == "evicted" and head.data["evicted_by_priority"] == 7
    assert note.type is EventType.NOTIFICATION and "will not be retried" in note.data["message"]
    assert [(r.metric.value, r.key) for r in evicted.rollups][0] == ("ended", "evicted")


@pytest.mark.parametrize("priority", [2, 1])
def test_a_job_not_above_the_lowest_is_refused(priority: int) -> None:
    new = job("new", priority)
    with pytest.raises(QueueFull) as raised:
        QueueBound(1).admit([new], 1, [job("low", 2)], NOW)
    assert raised.value.exit_code == 3 and raised.value.kind == "queue_full"
    assert list(raised.value.refused) == ["id-new"]
    assert "would be the lowest" in str(raised.value) and "has priority 2" in str(raised.value)


def test_nothing_evictable_refuses_whatever_the_priority() -> None:
    with pytest.raises(QueueFull, match="no scheduled job can make room"):
        QueueBound(1).admit([job("new", 10**9)], 1, [job("r", 0, rescues=1)], NOW)


def test_a_bulk_is_one_decision_naming_its_lowest_rows() -> None:
    new = [job("n1", 9), job("n2", 3), job("n3", 8)]
    lowest = [job("o1", 1), job("o2", 4), job("o3", 5)]
    # Three must go: o1 (1) goes, then n2 (3) is lower than o2 (4): the file is refused.
    with pytest.raises(QueueFull) as raised:
        QueueBound(3).admit(new, 3, lowest, NOW)
    assert set(raised.value.refused) == {"id-n2"}
    assert "nothing written" in str(raised.value)
    assert "3 must make room, 1 scheduled of priority below 3 can" in raised.value.refused["id-n2"]
    evicted = QueueBound(3).admit([job("n1", 9), job("n3", 8)], 3, lowest, NOW)
    assert [e.job.transaction_id for e in evicted] == ["o1", "o2"]
    assert {e.by.transaction_id for e in evicted} == {"n1", "n3"}


# -- the service's intake ------------------------------------------------------------------------


def _request(txn: str, amount: str) -> NewJob:
    return new_job(
        {
            "transaction_id": txn,
            "user_id": "user_1",
            "amount": amount,
            "currency": "USD",
            "error_code": "processing_error",
        },
        now=NOW,
    )


def test_queue_at_the_full_mark_evicts_refuses_and_stays_idempotent() -> None:
    store = MemoryStore()
    ops = Operations(store, RetryPolicy.standard(), bound=QueueBound(2))
    small, _ = ops.queue(_request("t-small", "1.00"), NOW)
    ops.queue(_request("t-mid", "5.00"), NOW)
    again, created = ops.queue(_request("t-mid", "5.00"), NOW)
    assert not created  # the same request while active: no new job, nothing evicted
    with pytest.raises(QueueFull):
        ops.queue(_request("t-tiny", "0.50"), NOW)
    big, created = ops.queue(_request("t-big", "50.00"), NOW)
    assert created
    evicted = ops.status("t-small")
    assert evicted.id == small.id and evicted.state is JobState.EVICTED
    story = explain(evicted, RetryPolicy.standard(), store.entries_for_job(evicted.id))
    step = next(s for s in story if s.kind == "evicted")
    assert "t-big" in step.text and "max_active = 2" in step.text
    assert step.data["evicted_by"] == big.id
    assert story[-1].text.startswith("It is evicted: evicted at queue time")


def test_queue_many_refused_by_the_bound_names_the_lines_and_writes_nothing() -> None:
    store = MemoryStore()
    ops = Operations(store, RetryPolicy.standard(), bound=QueueBound(2))
    ops.queue(_request("t-a", "3.00"), NOW)
    rows = [
        (1, _request("f-1", "9.00")),
        (2, _request("f-2", "1.00")),
        (3, _request("f-3", "8.00")),
    ]
    with pytest.raises(InvalidRows) as raised:
        ops.queue_many(rows, NOW)
    assert raised.value.exit_code == 3 and raised.value.kind == "refused"
    assert [line for line, _ in raised.value.problems] == [2]
    assert "the queue is full" in raised.value.problems[0][1]
    assert [j.transaction_id for j in store.list_jobs()] == ["t-a"]
    result = ops.queue_many([rows[0], rows[2]], NOW)
    assert result.created == 2
    assert ops.status("t-a").state is JobState.EVICTED
