"""Cancel of a job waiting on the customer, on the twins: its action is closed at the processor
first; each answer (expired, paid, pending, no answer, no processor) decides what follows."""

from __future__ import annotations

import pytest

from payretry.domain.models import CustomerAction, Job, JobState
from payretry.domain.results import ActionClosed, AttemptInDoubt, AttemptResult, Closing
from payretry.errors import ProcessorError, Refused
from payretry.service.operations import Operations
from payretry.service.runner import Runner
from payretry.testing import ManualClock, MemoryStore
from tests.unit.service.conftest import LEASE, POLICY, T0, Scripted, queue


class Expiry:
    """The ExpiresActions port, answering what the test says (an exception is raised)."""

    def __init__(self, answer: ActionClosed | Exception) -> None:
        self.answer = answer
        self.asked: list[str] = []

    def expire_action(self, job: Job) -> ActionClosed:
        assert job.action is not None
        self.asked.append(job.action.ref)
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def waiting(store: MemoryStore, clock: ManualClock) -> Job:
    queue(store, "t1")
    action = CustomerAction("cs_1", "https://checkout.example/cs_1", None)
    answer = AttemptResult.awaiting_customer(action, "complete checkout")
    Runner(store, POLICY, Scripted({"t1": [answer]}), clock=clock, lease_for=LEASE).run_due()
    job = store.find("t1")
    assert job is not None and job.state is JobState.AWAITING_PAYER
    return job


def test_an_expired_session_lets_the_cancel_through(store: MemoryStore, clock: ManualClock) -> None:
    waiting(store, clock)
    expiry = Expiry(ActionClosed(Closing.EXPIRED, "expired"))
    cancelled = Operations(store, POLICY, expiry=expiry).cancel("t1", T0)
    assert cancelled.state is JobState.CANCELLED and expiry.asked == ["cs_1"]


def test_a_paid_session_refuses_the_cancel_and_settles_the_job(
    store: MemoryStore, clock: ManualClock
) -> None:
    before = waiting(store, clock)
    paid = ActionClosed(Closing.PAID, "already paid", AttemptResult.success("pi_9"))
    with pytest.raises(Refused, match=r"succeeded instead") as caught:
        Operations(store, POLICY, expiry=Expiry(paid)).cancel("t1", T0)
    assert "pi_9" in caught.value.message
    job = store.find("t1")
    assert job is not None and job.state is JobState.SUCCEEDED
    assert job.attempts[-1].reference == "pi_9" and job.attempt_count == before.attempt_count


@pytest.mark.parametrize(
    ("answer", "error", "exit_code"),
    [
        (ActionClosed(Closing.PENDING, "settles later"), Refused, 3),
        (AttemptInDoubt("network_error", "no answer"), ProcessorError, 1),
        (Refused("not mine"), Refused, 3),
    ],
    ids=["pending", "unreachable", "not-its-session"],
)
def test_anything_else_refuses_the_cancel_and_changes_nothing(
    store: MemoryStore,
    clock: ManualClock,
    answer: ActionClosed | Exception,
    error: type[Exception],
    exit_code: int,
) -> None:
    before = waiting(store, clock)
    with pytest.raises(error) as caught:
        Operations(store, POLICY, expiry=Expiry(answer)).cancel("t1", T0)
    assert getattr(caught.value, "exit_code", None) == exit_code
    assert store.find("t1") == before


def test_without_a_processor_to_ask_the_cancel_is_refused(
    store: MemoryStore, clock: ManualClock
) -> None:
    before = waiting(store, clock)
    with pytest.raises(Refused, match="no processor is configured"):
        Operations(store, POLICY).cancel("t1", T0)
    assert store.find("t1") == before
