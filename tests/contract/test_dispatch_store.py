"""The store's dispatch methods (SQS mode) on every backend (memory, SQLite, PostgreSQL):
which jobs need a message, the intent and its confirmation, the rescue of unconfirmed intents,
and two dispatchers at once."""

from __future__ import annotations

import threading
from datetime import timedelta

from payretry.domain.changes import Cancelled, Finish
from payretry.domain.dispatch import HORIZON
from payretry.domain.policy import Outcome
from payretry.domain.results import AttemptResult
from tests.conftest import NOW
from tests.contract.conftest import ContractStore
from tests.daemon.helpers import queue_jobs
from tests.helpers import seen


def test_only_jobs_due_within_the_horizon_without_a_message_are_marked(
    contract_store: ContractStore,
) -> None:
    store = contract_store
    queue_jobs(store, 3, NOW, prefix="now")  # network_error: due at once
    queue_jobs(store, 2, NOW, prefix="later", error_code="insufficient_funds")  # in 24 h
    marked = store.mark_dispatch(NOW, NOW + HORIZON, 100)
    assert sorted(d.transaction_id for d in marked) == ["now_00001", "now_00002", "now_00003"]
    assert {d.attempt_number for d in marked} == {1}
    assert store.mark_dispatch(NOW, NOW + HORIZON, 100) == []  # marked once
    assert store.dispatch_counts() == {"dispatched": 3, "unconfirmed": 3}
    assert store.confirm_dispatch([(d, f"m-{d.seq}") for d in marked]) == 3
    assert store.dispatch_counts() == {"dispatched": 3, "unconfirmed": 0}
    day = NOW + timedelta(hours=23, minutes=50)
    assert len(store.mark_dispatch(day, day + HORIZON, 100)) == 2


def test_an_attempt_makes_the_next_one_need_a_message(contract_store: ContractStore) -> None:
    from payretry.config import load_settings

    store = contract_store
    queue_jobs(store, 1, NOW)
    first = store.mark_dispatch(NOW, NOW + HORIZON, 10)
    claimed = store.claim(NOW, 1, timedelta(minutes=5))[0]
    result = AttemptResult.failure("network_error")
    decision = (
        load_settings(env={}).policy().decide(claimed.job, claimed.attempt_number, result, NOW)
    )
    assert decision.outcome is Outcome.RETRY  # attempt 2 in 1 minute
    assert store.finish([Finish(claimed, result, decision, NOW)]) == [True]
    second = store.mark_dispatch(NOW, NOW + HORIZON, 10)
    assert [(d.job_id, d.attempt_number) for d in second] == [(first[0].job_id, 2)]
    assert second[0].message().delay_minutes == 1.0


def test_unconfirmed_intents_are_found_once_and_settled_when_the_job_moved_on(
    contract_store: ContractStore,
) -> None:
    store = contract_store
    queue_jobs(store, 2, NOW)
    marked = store.mark_dispatch(NOW, NOW + HORIZON, 10)
    assert store.unsent_dispatches(NOW - timedelta(minutes=1), NOW, 10) == []  # too recent
    later = NOW + timedelta(minutes=2)
    store.cancel(
        Cancelled(seen(store, marked[1].job_id), later, "test")
    )  # this one needs no message any more
    lost = store.unsent_dispatches(later - timedelta(minutes=1), later, 10)
    assert [d.job_id for d in lost] == [marked[0].job_id]
    assert store.unsent_dispatches(later - timedelta(minutes=1), later, 10) == []  # re-marked
    assert store.dispatch_counts()["unconfirmed"] == 1  # the cancelled one is settled


def test_undispatch_makes_a_job_need_a_message_again(contract_store: ContractStore) -> None:
    store = contract_store
    queue_jobs(store, 1, NOW)
    marked = store.mark_dispatch(NOW, NOW + HORIZON, 10)
    assert not store.undispatch(marked[0].job_id, 2)  # not that attempt
    assert store.undispatch(marked[0].job_id, 1)
    assert len(store.mark_dispatch(NOW, NOW + HORIZON, 10)) == 1


def test_two_dispatchers_at_once_mark_each_job_once(contract_store: ContractStore) -> None:
    store = contract_store
    queue_jobs(store, 300, NOW)
    found: list[list[str]] = [[], []]

    def dispatch(into: list[str]) -> None:
        while batch := store.mark_dispatch(NOW, NOW + HORIZON, 20):
            into.extend(d.job_id for d in batch)

    threads = [threading.Thread(target=dispatch, args=(found[i],)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(found[0]) + len(found[1]) == 300
    assert len(set(found[0]) | set(found[1])) == 300
