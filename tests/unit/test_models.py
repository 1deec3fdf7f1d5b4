"""Jobs and their states: the one transition table, attempts left, idempotency keys."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from itertools import product

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from payretry.domain.models import (
    ACTIVE_STATES,
    FINAL_STATES,
    TRANSITIONS,
    Job,
    JobState,
    NewJob,
    ProcessorRefs,
    attempt_key,
    check_transition,
)
from payretry.domain.money import Money
from payretry.errors import Refused
from tests.conftest import NOW

LEGAL = {
    (JobState.SCHEDULED, JobState.RUNNING),
    (JobState.SCHEDULED, JobState.SCHEDULED),
    (JobState.SCHEDULED, JobState.CANCELLED),
    (JobState.SCHEDULED, JobState.ABANDONED),
    (JobState.RUNNING, JobState.SCHEDULED),
    (JobState.RUNNING, JobState.SUCCEEDED),
    (JobState.RUNNING, JobState.FAILED),
    (JobState.RUNNING, JobState.EXHAUSTED),
    (JobState.RUNNING, JobState.ABANDONED),
    (JobState.RUNNING, JobState.AWAITING_PAYER),
    (JobState.AWAITING_PAYER, JobState.SUCCEEDED),
    (JobState.AWAITING_PAYER, JobState.SCHEDULED),
    (JobState.AWAITING_PAYER, JobState.FAILED),
    (JobState.AWAITING_PAYER, JobState.EXHAUSTED),
    (JobState.AWAITING_PAYER, JobState.ABANDONED),
    (JobState.AWAITING_PAYER, JobState.CANCELLED),
    (JobState.RUNNING, JobState.PARKED),
    (JobState.PARKED, JobState.RUNNING),
    (JobState.PARKED, JobState.CANCELLED),
    (JobState.SCHEDULED, JobState.BLOCKED),  # a card-network rule, at claim
    (JobState.RUNNING, JobState.BLOCKED),  # a card-network rule, after an attempt
    (JobState.SCHEDULED, JobState.EVICTED),  # a full queue made room for a higher job
}
ALL_PAIRS = list(product(JobState, JobState))


def make_job(**changes: object) -> Job:
    job = Job(
        id="0f3c",
        transaction_id="txn_1",
        user_id="user_1",
        money=Money(9999, "USD"),
        error_code="processing_error",
        decline_code=None,
        error_message=None,
        state=JobState.SCHEDULED,
        attempt_count=0,
        max_attempts=3,
        next_retry_at=NOW + timedelta(minutes=1),
        created_at=NOW,
        updated_at=NOW,
        expires_at=None,
        priority=9999,
    )
    return dataclasses.replace(job, **changes)  # type: ignore[arg-type]


def make_new_job(**changes: object) -> NewJob:
    new = NewJob(
        transaction_id="txn_1",
        user_id="user_1",
        money=Money(9999, "USD"),
        error_code="processing_error",
        decline_code=None,
        error_message="declined",
        refs=ProcessorRefs(payment_intent="pi_1"),
        metadata={"plan": "pro"},
        expires_at=None,
        priority=None,
    )
    return dataclasses.replace(new, **changes)  # type: ignore[arg-type]


def test_states_and_their_values() -> None:
    assert {s.value for s in JobState} == {
        "scheduled",
        "running",
        "succeeded",
        "failed",
        "exhausted",
        "abandoned",
        "cancelled",
        "awaiting_payer",
        "parked",
        "blocked",
        "evicted",
    }
    assert all(len(s.value) <= 16 for s in JobState)  # the state column's width
    assert FINAL_STATES | ACTIVE_STATES == set(JobState)
    assert not FINAL_STATES & ACTIVE_STATES
    assert {s for s in JobState if s.final} == FINAL_STATES


def test_transition_table_is_exactly_the_legal_set() -> None:
    table = {(a, b) for a, targets in TRANSITIONS.items() for b in targets}
    assert table == LEGAL
    assert set(TRANSITIONS) == set(JobState)


@pytest.mark.parametrize(("current", "target"), sorted(LEGAL))
def test_legal_transitions_pass(current: JobState, target: JobState) -> None:
    check_transition(current, target)


@pytest.mark.parametrize(("current", "target"), [(a, b) for a, b in ALL_PAIRS if a.final], ids=str)
def test_final_states_never_change(current: JobState, target: JobState) -> None:
    with pytest.raises(Refused, match="final states never change") as caught:
        check_transition(current, target)
    assert caught.value.exit_code == 3
    assert current.value in str(caught.value)


@pytest.mark.parametrize(
    ("current", "target"),
    [(a, b) for a, b in ALL_PAIRS if not a.final and (a, b) not in LEGAL],
    ids=str,
)
def test_other_illegal_transitions_are_refused(current: JobState, target: JobState) -> None:
    with pytest.raises(Refused, match=f"a {current.value} job cannot become {target.value}"):
        check_transition(current, target)


def test_a_job_cannot_skip_running() -> None:
    for outcome in (JobState.SUCCEEDED, JobState.FAILED, JobState.EXHAUSTED):
        with pytest.raises(Refused):
            check_transition(JobState.SCHEDULED, outcome)


@pytest.mark.parametrize(
    ("state", "attempt_count", "max_attempts", "remaining", "available"),
    [
        (JobState.SCHEDULED, 0, 3, 3, True),
        (JobState.SCHEDULED, 2, 3, 1, True),
        (JobState.SCHEDULED, 3, 3, 0, False),
        (JobState.SCHEDULED, 5, 3, 0, False),  # never negative
        (JobState.RUNNING, 1, 3, 2, False),  # in flight: not available to retry now
        (JobState.SUCCEEDED, 1, 3, 0, False),
        (JobState.FAILED, 1, 3, 0, False),
        (JobState.EXHAUSTED, 3, 3, 0, False),
        (JobState.ABANDONED, 1, 3, 0, False),
        (JobState.CANCELLED, 0, 3, 0, False),
    ],
)
def test_attempts_remaining_and_retry_available(
    state: JobState, attempt_count: int, max_attempts: int, remaining: int, available: bool
) -> None:
    job = make_job(state=state, attempt_count=attempt_count, max_attempts=max_attempts)
    assert job.attempts_remaining == remaining
    assert job.retry_available is available


@settings(max_examples=100)
@given(
    state=st.sampled_from(list(JobState)),
    attempt_count=st.integers(min_value=0, max_value=200),
    max_attempts=st.integers(min_value=0, max_value=100),
)
def test_attempts_remaining_bounds(state: JobState, attempt_count: int, max_attempts: int) -> None:
    job = make_job(state=state, attempt_count=attempt_count, max_attempts=max_attempts)
    assert 0 <= job.attempts_remaining <= max_attempts
    if state.final:
        assert job.attempts_remaining == 0
    else:
        assert job.attempts_remaining == max(0, max_attempts - attempt_count)
    assert job.retry_available == (state is JobState.SCHEDULED and attempt_count < max_attempts)


def test_idempotency_key_format() -> None:
    assert attempt_key("abc", 1) == "payretry:abc:1"
    job = make_job(id="7d1e", attempt_count=0)
    assert job.idempotency_key() == "payretry:7d1e:1"  # the next attempt
    assert job.idempotency_key(3) == "payretry:7d1e:3"
    assert make_job(id="7d1e", attempt_count=2).idempotency_key() == "payretry:7d1e:3"


@settings(max_examples=50)
@given(
    job_id=st.uuids().map(str),
    attempt_count=st.integers(min_value=0, max_value=100),
)
def test_idempotency_key_is_stable_and_distinct(job_id: str, attempt_count: int) -> None:
    job = make_job(id=job_id, attempt_count=attempt_count)
    key = job.idempotency_key()
    assert key == f"payretry:{job_id}:{attempt_count + 1}"
    assert key == make_job(id=job_id, attempt_count=attempt_count).idempotency_key()
    assert key != job.idempotency_key(attempt_count + 2)
    assert key != make_job(id=job_id + "x", attempt_count=attempt_count).idempotency_key()


def test_jobs_are_frozen() -> None:
    job = make_job()
    with pytest.raises(dataclasses.FrozenInstanceError):
        job.state = JobState.RUNNING  # type: ignore[misc]


def test_processor_refs_as_dict() -> None:
    assert ProcessorRefs(payment_intent="pi_1", customer="cus_1").as_dict() == {
        "payment_intent": "pi_1",
        "customer": "cus_1",
        "payment_method": None,
        "checkout_session": None,
    }


def test_new_job_priority_defaults_to_amount() -> None:
    assert make_new_job().effective_priority == 9999
    assert make_new_job(money=Money(1000, "JPY")).effective_priority == 100000
    assert make_new_job(priority=5).effective_priority == 5
    assert make_new_job(priority=0).effective_priority == 0  # 0 is a priority, not "none"


def test_same_request_ignores_window_and_message() -> None:
    a = make_new_job()
    b = make_new_job(error_message="other text", expires_at=NOW, window="24h")
    assert a.same_request_as(b)
    job = make_job(
        priority=9999,
        refs=ProcessorRefs(payment_intent="pi_1"),
        metadata={"plan": "pro"},
        error_message="something else",
    )
    assert a.same_request(job)


@pytest.mark.parametrize(
    "change",
    [
        {"user_id": "user_2"},
        {"money": Money(10000, "USD")},
        {"money": Money(9999, "EUR")},
        {"error_code": "network_error"},
        {"decline_code": "generic_decline"},
        {"refs": ProcessorRefs(payment_intent="pi_2")},
        {"metadata": {"plan": "basic"}},
        {"priority": 1},
    ],
    ids=lambda change: next(iter(change)),
)
def test_different_parameters_are_a_different_request(change: dict[str, object]) -> None:
    a = make_new_job()
    b = make_new_job(**change)
    assert not a.same_request_as(b)
    job = make_job(refs=ProcessorRefs(payment_intent="pi_1"), metadata={"plan": "pro"})
    assert a.same_request(job)
    assert not b.same_request(job)
