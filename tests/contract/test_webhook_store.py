"""The WebhookStore contract (and the revival by hand), on the in-memory twin, SQLite and
PostgreSQL: each event recorded once with its changes, all or nothing; a payment made
elsewhere ends the job, takes the running attempt's lease and settles its card ledger entry;
a revival schedules the job again and takes back the end the rollups counted for it; the
lookups the events need; records purged with the jobs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Protocol, cast

import pytest

from payretry.domain.card_checks import job_card, queue_entry
from payretry.domain.card_ledger import CardKey, EntryKind, KeyKind, LedgerEntry
from payretry.domain.changes import Finish, PaidElsewhere, Queued, Revived, Settlement
from payretry.domain.models import CustomerAction, Job, JobState, ProcessorRefs
from payretry.domain.network_rules import NetworkRules
from payretry.domain.policy import RetryPolicy
from payretry.domain.results import AttemptResult
from payretry.domain.revival import RevivalStore, revivable
from payretry.domain.rollups import Metric
from payretry.domain.webhooks import WebhookChange, WebhookRecord, WebhookStore, Written
from payretry.errors import Refused
from tests.contract.conftest import ContractStore
from tests.contract.test_store_contract import LEASE, NOW, make_job

POLICY = RetryPolicy.standard()
RULES = NetworkRules()
SINCE = NOW - timedelta(days=30)


class HookStore(ContractStore, WebhookStore, RevivalStore, Protocol):
    """What the webhooks use of a store."""


@pytest.fixture
def store(contract_store: ContractStore) -> HookStore:
    return cast(HookStore, contract_store)


def record(event_id: str, job: Job | None, kind: str = "payment_intent.succeeded") -> WebhookRecord:
    return WebhookRecord(
        event_id,
        kind,
        NOW,
        NOW - timedelta(seconds=5),
        "what the event did",
        applied=True,
        object_id=job.refs.payment_intent if job is not None else None,
        job_id=job.id if job is not None else None,
        transaction_id=job.transaction_id if job is not None else None,
    )


def carded(txn: str, *, pm: str = "pm_1", error_code: str = "processing_error") -> Queued:
    job = replace(
        make_job(txn, error_code=error_code),
        refs=ProcessorRefs(payment_intent=f"pi_{txn}", customer="cus_1", payment_method=pm),
    )
    card = job_card(job)
    assert card is not None
    return Queued(job, queue_entry(job, card, NOW - timedelta(hours=1)))


def apply(store: HookStore, event_id: str, *changes: WebhookChange) -> Written:
    return store.record_webhook(record(event_id, changes[0].job if changes else None), changes)


def ended(store: HookStore) -> dict[str, int]:
    return {r.key: r.count for r in store.rollups() if r.metric is Metric.ENDED}


def codes(store: HookStore) -> dict[str, tuple[int, int]]:
    return {r.key: (r.count, r.amount_minor) for r in store.rollups() if r.metric is Metric.CODE}


def entries(store: HookStore, key: str = "pm_1") -> list[tuple[int | None, EntryKind]]:
    found: Sequence[LedgerEntry] = store.card_history(CardKey(KeyKind.PAYMENT_METHOD, key), SINCE)
    return sorted((e.attempt_number, e.kind) for e in found)


def fail_for_good(store: HookStore, error: str = "expired_card") -> Job:
    """Claim the one due job and fail it with a code never retried: the job ends failed."""
    [claimed] = store.claim(NOW, 1, LEASE, rules=RULES)
    result = AttemptResult.failure("card_declined", error, "declined")
    decision = POLICY.decide(claimed.job, 1, result, NOW, claimed.card)
    assert decision.state is JobState.FAILED, decision.reason
    assert store.finish([Finish(claimed, result, decision, NOW)]) == [True]
    job = store.get(claimed.job.id)
    assert job is not None and job.state is JobState.FAILED
    return job


# -- each event once, all or nothing -------------------------------------------------------------


def test_paid_elsewhere_ends_a_running_job_and_settles_its_card_entry(store: HookStore) -> None:
    store.insert(carded("t1"))
    [claimed] = store.claim(NOW, 1, LEASE, rules=RULES)
    assert entries(store) == [(0, EntryKind.DECLINE), (1, EntryKind.ATTEMPT)]
    at = NOW + timedelta(seconds=3)
    paid = PaidElsewhere(claimed.job, "pi_t1", "evt_1", "payment_intent.succeeded", at)
    outbox = len(store.entries_for_job(claimed.job.id))
    assert apply(store, "evt_1", paid) is Written.APPLIED
    job = store.get(claimed.job.id)
    assert job is not None and job.state is JobState.SUCCEEDED and job.attempt_count == 1
    assert job.lease_token is None and "evt_1" in (job.reason or "")
    assert job.attempts[0].outcome.value == "succeeded" and job.attempts[0].reference == "pi_t1"
    # The attempt's authorization is settled: an approval, no longer a possible decline.
    assert entries(store) == [(0, EntryKind.DECLINE), (1, EntryKind.APPROVAL)]
    [approval] = [
        e
        for e in store.card_history(CardKey(KeyKind.PAYMENT_METHOD, "pm_1"), SINCE)
        if e.attempt_number == 1
    ]
    assert approval.at == at and not approval.possible_decline
    kinds = [e.kind.value for e in store.entries_for_job(job.id)]
    assert len(kinds) == outbox + 1 and kinds[-1] == "retry_success"
    assert ended(store) == {"succeeded": 1}
    # The running attempt's late outcome is never recorded.
    late = AttemptResult.failure("card_declined", "insufficient_funds", "late")
    decision = POLICY.decide(claimed.job, 1, late, at, claimed.card)
    assert store.finish([Finish(claimed, late, decision, at)]) == [False]
    assert store.get(job.id).state is JobState.SUCCEEDED  # type: ignore[union-attr]
    # The same event again: nothing written twice.
    assert apply(store, "evt_1", paid) is Written.DUPLICATE
    assert len(store.entries_for_job(job.id)) == outbox + 1
    assert store.webhook_recorded("evt_1") and not store.webhook_recorded("evt_2")
    assert store.payment_succeeded_seen("pi_t1") and not store.payment_succeeded_seen("pi_x")
    assert [r.event_id for r in store.webhooks_for_job(job.id)] == ["evt_1"]


def test_paid_elsewhere_of_a_scheduled_job_without_a_card(store: HookStore) -> None:
    job = store.insert(Queued(replace(make_job("t2"), refs=ProcessorRefs(payment_intent="pi_2"))))
    paid = PaidElsewhere(job, "pi_2", "evt_2", "payment_intent.succeeded", NOW)
    assert apply(store, "evt_2", paid) is Written.APPLIED
    done = store.get(job.id)
    assert done is not None and done.state is JobState.SUCCEEDED and done.attempt_count == 0
    assert done.attempts == ()
    assert [j.id for j in store.jobs_for_payment("pi_2")] == [job.id]


def test_a_lost_fence_writes_nothing_not_even_the_record(store: HookStore) -> None:
    queued = store.insert(carded("t3"))
    store.claim(NOW, 1, LEASE, rules=RULES)  # running now: the scheduled job seen is stale
    before = store.entries_for_job(queued.id)
    stale = PaidElsewhere(queued, "pi_t3", "evt_3", "payment_intent.succeeded", NOW)
    assert apply(store, "evt_3", stale) is Written.CHANGED
    assert not store.webhook_recorded("evt_3")
    assert store.get(queued.id).state is JobState.RUNNING  # type: ignore[union-attr]
    assert store.entries_for_job(queued.id) == before
    assert entries(store) == [(0, EntryKind.DECLINE), (1, EntryKind.ATTEMPT)]
    # A final job can never be paid elsewhere: refused, not a race.
    final = replace(queued, state=JobState.CANCELLED)
    with pytest.raises(Refused):
        apply(store, "evt_4", PaidElsewhere(final, "pi", "evt_4", "x", NOW))


def test_a_new_job_once_per_transaction(store: HookStore) -> None:
    first = Queued(make_job("t5"))
    assert apply(store, "evt_5", first) is Written.APPLIED
    assert store.find("t5") is not None and store.webhook_recorded("evt_5")
    again = Queued(make_job("t5"))  # another job, active for the same transaction
    assert apply(store, "evt_6", again) is Written.CHANGED
    assert not store.webhook_recorded("evt_6")
    assert store.find("t5").id == first.job.id  # type: ignore[union-attr]
    assert apply(store, "evt_7") is Written.APPLIED  # a record with no change at all
    assert store.webhook_recorded("evt_7")


def test_a_checkout_settled_by_its_event(store: HookStore) -> None:
    job = store.insert(Queued(make_job("t8")))
    [claimed] = store.claim(NOW, 1, LEASE, rules=RULES)
    action = CustomerAction("cs_8", "https://checkout.example/cs_8", NOW + timedelta(hours=1))
    waiting = AttemptResult.awaiting_customer(action, "complete checkout")
    decision = POLICY.decide(claimed.job, 1, waiting, NOW)
    assert store.finish([Finish(claimed, waiting, decision, NOW)]) == [True]
    found = store.job_for_session("cs_8")
    assert found is not None and found.id == job.id and found.state is JobState.AWAITING_PAYER
    paid = AttemptResult.success("pi_8")
    settled = Settlement(found, paid, POLICY.decide(found, 1, paid, NOW), NOW)
    assert apply(store, "evt_8", settled) is Written.APPLIED
    assert store.get(job.id).state is JobState.SUCCEEDED  # type: ignore[union-attr]
    assert apply(store, "evt_9", settled) is Written.CHANGED  # it no longer waits
    assert store.job_for_session("cs_none") is None


# -- revival and the rollups ---------------------------------------------------------------------


def _revived(job: Job, by: str, at: datetime) -> Revived:
    return Revived(job, "pm_new", "cus_1", None, None, by, revivable(job, at, POLICY.cap), at)


@pytest.mark.parametrize("how", ["webhook", "by_hand"])
def test_a_revival_takes_back_the_end_counted_so_a_job_counts_once(
    store: HookStore, how: str
) -> None:
    store.insert(carded("t10", error_code="card_declined"))
    failed = fail_for_good(store)
    assert ended(store) == {"failed": 1}
    assert codes(store) == {"card_declined|failed": (1, 1000)}
    assert [j.id for j in store.jobs_for_customer("cus_1")] == [failed.id]
    at = NOW + timedelta(days=1)
    revived = _revived(failed, "evt_10" if how == "webhook" else "operator", at)
    if how == "webhook":
        assert apply(store, "evt_10", revived) is Written.APPLIED
    else:
        assert store.revive(revived).state is JobState.SCHEDULED
    job = store.get(failed.id)
    assert job is not None and job.state is JobState.SCHEDULED and job.next_retry_at == at
    assert job.refs.payment_method == "pm_new" and job.revived_after == 1
    assert ended(store) == {} and codes(store) == {}  # not ended after all
    [claimed] = store.claim(at, 1, LEASE, rules=RULES)
    ok = AttemptResult.success("pi_ok")
    decision = POLICY.decide(claimed.job, 2, ok, at, claimed.card)
    assert store.finish([Finish(claimed, ok, decision, at)]) == [True]
    # Exactly one end, the final one; both attempts stay counted as made.
    assert ended(store) == {"succeeded": 1}
    assert codes(store) == {"card_declined|succeeded": (1, 1000)}
    attempts = {r.key: r.count for r in store.rollups() if r.metric is Metric.ATTEMPT}
    assert attempts == {"1|failed": 1, "2|succeeded": 1}
    assert all(r.day == NOW.date() or r.day == at.date() for r in store.rollups())


def test_a_job_blocked_by_its_claim_is_counted_once_and_taken_back_by_a_revival(
    store: HookStore,
) -> None:
    queued = carded("t11", error_code="card_declined")
    mac01 = replace(queued.card_entry, network_advice_code="01")  # type: ignore[type-var]
    store.insert(replace(queued, card_entry=mac01))
    batch = store.claim(NOW, 1, LEASE, rules=RULES)
    assert len(batch) == 0 and len(batch.held) == 1 and batch.held[0].blocked
    blocked = store.get(queued.job.id)
    assert blocked is not None and blocked.state is JobState.BLOCKED
    assert ended(store) == {"blocked": 1}  # a block at claim ends the job: counted
    assert store.revive(_revived(blocked, "operator", NOW)).state is JobState.SCHEDULED
    assert ended(store) == {} and codes(store) == {}  # taken back, nothing negative


def test_a_revival_fenced_by_the_job_and_its_transaction(store: HookStore) -> None:
    store.insert(carded("t12", error_code="card_declined"))
    failed = fail_for_good(store)
    store.insert(Queued(make_job("t12")))  # a new job is active for the transaction now
    with pytest.raises(Refused, match="active"):
        store.revive(_revived(failed, "operator", NOW))
    assert apply(store, "evt_12", _revived(failed, "evt_12", NOW)) is Written.CHANGED
    assert store.get(failed.id).state is JobState.FAILED  # type: ignore[union-attr]
    assert ended(store) == {"failed": 1}  # nothing taken back


def test_records_are_purged_with_the_jobs(store: HookStore) -> None:
    assert apply(store, "evt_13") is Written.APPLIED
    store.purge(NOW - timedelta(days=1))
    assert store.webhook_recorded("evt_13")
    store.purge(NOW + timedelta(days=1))
    assert not store.webhook_recorded("evt_13")
