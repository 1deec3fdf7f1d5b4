"""More of the Store contract, on every backend: the heartbeat's lease extension, jobs waiting
on the customer and their settlement (fenced by the attempt), a cancel fenced on the job as the
operator saw it."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from payretry.domain.changes import Cancelled, Claimed, Finish, Queued, Settlement
from payretry.domain.events import EventType
from payretry.domain.models import AttemptOutcome, CustomerAction, JobState
from payretry.domain.policy import RetryPolicy
from payretry.domain.results import AttemptResult
from payretry.errors import Refused
from tests.contract.conftest import ContractStore
from tests.contract.test_store_contract import LEASE, NOW, failed_retry, get, make_job
from tests.helpers import seen

POLICY = RetryPolicy.standard()
MINUTE = timedelta(minutes=1)


def awaiting_customer(store: ContractStore, claimed: Claimed, ref: str) -> Finish:
    action = CustomerAction(ref, f"https://checkout.example/{ref}", NOW + 60 * MINUTE)
    result = AttemptResult.awaiting_customer(action, "complete checkout")
    decision = POLICY.decide(claimed.job, claimed.attempt_number, result, NOW)
    finish = Finish(claimed, result, decision, NOW)
    assert store.finish([finish]) == [True]
    return finish


def settlement(store: ContractStore, job_id: str, result: AttemptResult) -> Settlement:
    job = get(store, make_job(job_id=job_id))
    at = NOW + 5 * MINUTE
    return Settlement(job, result, POLICY.decide(job, job.attempt_count, result, at), at)


def test_extend_leases_pushes_only_the_leases_still_held(contract_store: ContractStore) -> None:
    store = contract_store
    store.insert_many([Queued(make_job(f"txn-{i}", priority=10 - i)) for i in range(2)])
    [lost] = store.claim(NOW, 1, MINUTE)
    [kept] = store.claim(NOW, 1, LEASE)
    later = NOW + 2 * MINUTE
    store.rescue(later)
    [fresh] = store.claim(later, 1, MINUTE)
    assert fresh.job.id == lost.job.id
    until = later + LEASE
    assert store.extend_leases([lost, kept], until) == 1
    assert get(store, kept.job).lease_expires_at == until
    assert get(store, fresh.job).lease_expires_at == later + MINUTE  # the new holder's own
    assert store.extend_leases([], until) == 0


def test_jobs_awaiting_the_customer_are_listed_in_queue_order(
    contract_store: ContractStore,
) -> None:
    store = contract_store
    store.insert_many([Queued(make_job(f"txn-{i}", priority=10 - i)) for i in range(3)])
    claimed = store.claim(NOW, 3, LEASE)
    for c in claimed:
        awaiting_customer(store, c, f"cs_{c.job.transaction_id}")
    waiting = store.awaiting(limit=2)
    assert [j.transaction_id for j in waiting] == ["txn-0", "txn-1"]
    assert [j.transaction_id for j in store.awaiting(after_seq=waiting[-1].seq)] == ["txn-2"]
    job = get(store, claimed[0].job)
    assert job.state is JobState.AWAITING_PAYER and job.attempt_count == 1
    assert job.action == CustomerAction(
        "cs_txn-0", "https://checkout.example/cs_txn-0", NOW + 60 * MINUTE
    )
    assert job.lease_token is None
    assert [a.outcome for a in job.attempts] == [AttemptOutcome.AWAITING]


def test_a_settlement_is_recorded_once(contract_store: ContractStore) -> None:
    store = contract_store
    store.insert(Queued(make_job("txn-s")))
    [claimed] = store.claim(NOW, 1, LEASE)
    awaiting_customer(store, claimed, "cs_1")
    paid = settlement(store, claimed.job.id, AttemptResult.success("pi_paid"))
    assert store.settle_awaiting([paid, paid]) == [True, False]  # two runners, one record
    assert store.settle_awaiting([paid]) == [False]
    job = get(store, claimed.job)
    assert job.state is JobState.SUCCEEDED and job.action is None
    assert job.attempt_count == 1 and job.updated_at == NOW + 5 * MINUTE
    [attempt] = job.attempts
    assert attempt.outcome is AttemptOutcome.SUCCEEDED and attempt.reference == "pi_paid"
    assert attempt.decision == "succeeded" and attempt.finished_at == NOW + 5 * MINUTE
    kinds = [e.kind for e in store.entries_for_job(job.id)]
    assert kinds == [
        EventType.SCHEDULED,
        EventType.INITIATED,
        EventType.NOTIFICATION,
        EventType.SUCCESS,
    ]
    assert store.awaiting() == []


def test_an_expired_checkout_is_a_failed_attempt_then_the_policy_decides(
    contract_store: ContractStore,
) -> None:
    store = contract_store
    store.insert(Queued(make_job("txn-e")))
    [claimed] = store.claim(NOW, 1, LEASE)
    awaiting_customer(store, claimed, "cs_2")
    expired = settlement(store, claimed.job.id, AttemptResult.failure("processing_error"))
    assert store.settle_awaiting([expired]) == [True]
    job = get(store, claimed.job)
    assert job.state is JobState.SCHEDULED and job.next_retry_at == expired.decision.next_retry_at
    assert job.attempts[0].outcome is AttemptOutcome.FAILED
    [again] = store.claim(NOW + timedelta(days=1), 1, LEASE)
    assert again.attempt_number == 2


def test_a_cancel_is_fenced_on_the_job_as_the_operator_saw_it(
    contract_store: ContractStore,
) -> None:
    store = contract_store
    job = store.insert(Queued(make_job("txn-c")))
    looked = seen(store, job.id)
    [claimed] = store.claim(NOW, 1, LEASE)
    store.finish([failed_retry(claimed, NOW, NOW + 5 * MINUTE)])  # an attempt meanwhile
    before = get(store, job)
    with pytest.raises(Refused, match="changed"):
        store.cancel(Cancelled(looked, NOW + MINUTE, "operator"))
    assert get(store, job) == before
    cancelled = store.cancel(Cancelled(seen(store, job.id), NOW + MINUTE, "operator"))
    assert cancelled.state is JobState.CANCELLED and cancelled.attempt_count == 1
    assert [a.outcome for a in cancelled.attempts] == [AttemptOutcome.FAILED]


def test_a_job_awaiting_the_customer_can_be_cancelled(contract_store: ContractStore) -> None:
    store = contract_store
    store.insert(Queued(make_job("txn-w")))
    [claimed] = store.claim(NOW, 1, LEASE)
    awaiting_customer(store, claimed, "cs_3")
    cancelled = store.cancel(Cancelled(seen(store, claimed.job.id), NOW, "operator"))
    assert cancelled.state is JobState.CANCELLED and cancelled.next_retry_at is None
    assert store.awaiting() == []
    late = settlement(store, claimed.job.id, AttemptResult.success("pi_late"))
    assert store.settle_awaiting([late]) == [False]


def test_claims_from_many_threads_never_share_a_job(contract_store: ContractStore) -> None:
    store = contract_store
    store.insert_many([Queued(make_job(f"txn-{i:03d}", priority=i)) for i in range(120)])
    taken: list[list[Claimed]] = [[] for _ in range(4)]

    def claim_until_empty(into: list[Claimed]) -> None:
        while batch := store.claim(NOW, 7, LEASE):
            into.extend(batch)

    threads = [threading.Thread(target=claim_until_empty, args=(t,)) for t in taken]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    ids = [c.job.id for found in taken for c in found]
    assert len(ids) == len(set(ids)) == 120
    for found in taken:  # each claim took the best of what was left
        priorities = [c.job.priority for c in found]
        assert priorities == sorted(priorities, reverse=True)
    assert store.stats(NOW).by_state == {"running": 120}
