"""Customer actions (Checkout Sessions) settled on the twins: how each session ended decides
what follows; an open session or one that could not be read changes nothing; two runners
record an end once; the runner settles before it claims."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from datetime import timedelta

from payretry.domain.models import AttemptOutcome, CustomerAction, Job, JobState
from payretry.domain.outcomes import JobResult, RunReport
from payretry.domain.results import AttemptInDoubt, AttemptResult
from payretry.service.customer_actions import CustomerActionSettler
from payretry.service.reporting import Reporter
from payretry.service.runner import Runner
from payretry.testing import ManualClock, MemoryStore
from tests.unit.service.conftest import LEASE, POLICY, T0, Scripted, queue

Ending = AttemptResult | AttemptInDoubt | None


class Sessions:
    """The CustomerActions port: how each session ended, by its id (None: still open).
    `looking(job)` runs as each is looked at."""

    def __init__(
        self, endings: Mapping[str, Ending], looking: Callable[[Job], None] | None = None
    ) -> None:
        self.endings = dict(endings)
        self.looking = looking
        self.looked: list[str] = []

    def check_action(self, job: Job) -> AttemptResult | None:
        assert job.action is not None
        self.looked.append(job.action.ref)
        if self.looking is not None:
            self.looking(job)
        ending = self.endings.get(job.action.ref)
        if isinstance(ending, AttemptInDoubt):
            raise ending
        return ending


def waiting(store: MemoryStore, clock: ManualClock, *txns: str) -> None:
    """Jobs whose first attempt sent the customer to a Checkout Session `cs_<txn>`."""
    answers = {
        txn: [
            AttemptResult.awaiting_customer(
                CustomerAction(f"cs_{txn}", f"https://checkout.example/cs_{txn}", None),
                "complete checkout",
            )
        ]
        for txn in txns
    }
    for n, txn in enumerate(txns):
        queue(store, txn, amount=f"{90 - n}.00")
    Runner(store, POLICY, Scripted(answers), clock=clock, lease_for=LEASE).run_due()
    assert [j.transaction_id for j in store.awaiting()] == list(txns)


def settler(
    store: MemoryStore,
    clock: ManualClock,
    sessions: Sessions,
    stop: threading.Event | None = None,
) -> CustomerActionSettler:
    """One page of one job at a time, so paging is exercised too."""
    stop = stop or threading.Event()
    return CustomerActionSettler(store, POLICY, sessions, clock=clock, stop=stop, batch_size=1)


def job(store: MemoryStore, txn: str) -> Job:
    found = store.find(txn)
    assert found is not None
    return found


def test_each_ending_decides_what_follows(store: MemoryStore, clock: ManualClock) -> None:
    waiting(store, clock, "paid", "expired", "open", "unread")
    sessions = Sessions(
        {
            "cs_paid": AttemptResult.success("pi_paid"),
            "cs_expired": AttemptResult.failure("checkout_expired", reference="cs_expired"),
            "cs_open": None,
            "cs_unread": AttemptInDoubt("network_error", "no answer"),
        }
    )
    clock.advance(minutes=30)
    results: list[JobResult] = []
    reporter = Reporter(RunReport(), results.append)
    assert settler(store, clock, sessions).settle(reporter) == 2
    assert sessions.looked == ["cs_paid", "cs_expired", "cs_open", "cs_unread"]  # page by page
    assert {r.transaction_id: r.outcome for r in results} == {
        "paid": "succeeded",
        "expired": "rescheduled",
    }
    paid = job(store, "paid")
    assert paid.state is JobState.SUCCEEDED and paid.action is None
    assert paid.attempts[0].outcome is AttemptOutcome.SUCCEEDED
    assert paid.attempts[0].reference == "pi_paid"
    expired = job(store, "expired")
    assert expired.state is JobState.SCHEDULED and expired.attempt_count == 1
    assert expired.next_retry_at is not None and expired.next_retry_at > clock()
    assert expired.attempts[0].outcome is AttemptOutcome.FAILED
    for txn in ("open", "unread"):  # looked at again on the next pass
        assert job(store, txn).state is JobState.AWAITING_PAYER
    assert reporter.report.counts["succeeded"] == 1 and reporter.report.counts["rescheduled"] == 1


def test_two_runners_record_a_sessions_end_once(store: MemoryStore, clock: ManualClock) -> None:
    waiting(store, clock, "t1")
    paid = {"cs_t1": AttemptResult.success("pi_1")}
    other: list[int] = []

    def the_other_runner_first(job: Job) -> None:
        other.append(settler(store, clock, Sessions(paid)).settle(Reporter(RunReport())))

    results: list[JobResult] = []
    ours = settler(store, clock, Sessions(paid, the_other_runner_first))
    assert ours.settle(Reporter(RunReport(), results.append)) == 0
    assert other == [1] and results == []  # recorded and reported by the other one only
    assert job(store, "t1").state is JobState.SUCCEEDED


def test_a_stop_settles_nothing(store: MemoryStore, clock: ManualClock) -> None:
    waiting(store, clock, "t1")
    stop = threading.Event()
    stop.set()
    sessions = Sessions({"cs_t1": AttemptResult.success("pi_1")})
    assert settler(store, clock, sessions, stop=stop).settle(Reporter(RunReport())) == 0
    assert sessions.looked == []


def test_the_runner_settles_sessions_before_it_claims(
    store: MemoryStore, clock: ManualClock
) -> None:
    waiting(store, clock, "waiting")
    queue(store, "due")
    sessions = Sessions({"cs_waiting": AttemptResult.success("pi_w")})
    processor = Scripted()
    results: list[JobResult] = []
    report = Runner(
        store, POLICY, processor, clock=clock, lease_for=LEASE, customer_actions=sessions
    ).run_due(on_result=results.append)
    assert [(r.transaction_id, r.outcome) for r in results] == [
        ("waiting", "succeeded"),
        ("due", "succeeded"),
    ]
    assert report.counts["succeeded"] == 2 and report.processed == 1  # one attempt made here
    assert processor.transactions == ["due"]


def test_an_expired_session_past_the_window_abandons_the_job(
    store: MemoryStore, clock: ManualClock
) -> None:
    answers = {
        "t1": [
            AttemptResult.awaiting_customer(
                CustomerAction("cs_t1", None, T0 + timedelta(minutes=30)), "complete checkout"
            )
        ]
    }
    queue(store, "t1", window="40m")
    Runner(store, POLICY, Scripted(answers), clock=clock, lease_for=LEASE).run_due()
    clock.advance(minutes=40)  # expired: attempt 2 would come 1 m later, past the window
    sessions = Sessions({"cs_t1": AttemptResult.failure("checkout_expired")})
    results: list[JobResult] = []
    settler(store, clock, sessions).settle(Reporter(RunReport(), results.append))
    assert [r.outcome for r in results] == ["abandoned"]
    assert job(store, "t1").state is JobState.ABANDONED
