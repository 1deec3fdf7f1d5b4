"""The card ledger's store contract, on the in-memory twin, SQLite and PostgreSQL: the entries
a queue, a claim, an outcome and a release write, in their own transactions; the claim's check
holding jobs; a card learnt from a decline; the ledger's own purge."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from payretry.domain.card_checks import job_card, queue_entry
from payretry.domain.card_ledger import CardKey, EntryKind, KeyKind
from payretry.domain.changes import Finish, Queued
from payretry.domain.models import JobState, ProcessorRefs
from payretry.domain.network_rules import NetworkRules
from payretry.domain.policy import RetryPolicy
from payretry.domain.results import AttemptResult
from tests.conftest import NOW
from tests.contract.conftest import ContractStore
from tests.contract.test_store_contract import make_job

LEASE = timedelta(minutes=5)
POLICY = RetryPolicy.standard()
RULES = NetworkRules()
SINCE = NOW - timedelta(days=30)
PM = CardKey(KeyKind.PAYMENT_METHOD, "pm_1")


def carded(txn: str, *, method: str = "pm_1", fingerprint: str | None = None) -> Queued:
    job = replace(
        make_job(txn),
        refs=ProcessorRefs(customer="cus_1", payment_method=method),
        card_network="mastercard" if fingerprint else None,
        card_fingerprint=fingerprint,
    )
    card = job_card(job)
    assert card is not None
    return Queued(job, queue_entry(job, card, NOW - timedelta(hours=1)))


def finish(store: ContractStore, result: AttemptResult) -> list[bool]:
    [claimed] = store.claim(NOW, 1, LEASE, rules=RULES)
    decision = POLICY.decide(claimed.job, claimed.attempt_number, result, NOW, claimed.card)
    return store.finish([Finish(claimed, result, decision, NOW)])


def test_the_queue_and_the_claim_write_the_cards_entries(contract_store: ContractStore) -> None:
    contract_store.insert(carded("t1"))
    contract_store.insert_many([carded("t2")])
    kinds = [(e.attempt_number, e.kind) for e in contract_store.card_history(PM, SINCE)]
    assert kinds == [(0, EntryKind.DECLINE)] * 2
    batch = contract_store.claim(NOW, 10, LEASE, rules=RULES)
    assert len(batch) == 2 and batch.held == ()
    assert all(c.card is not None and c.card.sent(c.job.id, 1) for c in batch)
    entries = contract_store.card_history(PM, SINCE)
    assert sorted((e.attempt_number, e.kind.value) for e in entries) == [
        (0, "decline"),
        (0, "decline"),
        (1, "attempt"),
        (1, "attempt"),
    ]
    assert contract_store.release(list(batch), NOW) == 2  # never sent: their entries go
    assert [e.attempt_number for e in contract_store.card_history(PM, SINCE)] == [0, 0]


def test_an_outcome_settles_the_entry_in_its_transaction(contract_store: ContractStore) -> None:
    contract_store.insert(carded("t1"))
    assert finish(contract_store, AttemptResult.success("pi_1")) == [True]
    [queued, paid] = contract_store.card_history(PM, SINCE)
    assert paid.kind is EntryKind.APPROVAL and paid.attempt_number == 1 and paid.at == NOW
    later = contract_store.insert(carded("t2"))
    finish(contract_store, AttemptResult.failure("rate_limit_exceeded"))  # nothing was sent
    entries = contract_store.card_history(PM, SINCE)
    assert [e.attempt_number for e in entries if e.job_id == later.id] == [0]
    assert [e.kind for e in entries if e.job_id == queued.job_id] == [
        EntryKind.DECLINE,
        EntryKind.APPROVAL,
    ]


def test_a_card_named_by_a_decline_takes_the_payment_methods_entries(
    contract_store: ContractStore,
) -> None:
    contract_store.insert(carded("t1"))
    contract_store.insert(carded("t2"))  # the same payment method, not yet its card
    named = replace(
        AttemptResult.failure("card_declined", "try_again_later"),
        network_advice_code="25",
        card_network="mastercard",
        card_fingerprint="fpLearnt1",
    )
    [first] = contract_store.claim(NOW, 1, LEASE, rules=RULES)
    decision = POLICY.decide(first.job, 1, named, NOW, first.card)
    contract_store.finish([Finish(first, named, decision, NOW)])
    job = contract_store.get(first.job.id)
    assert job is not None and (job.card_network, job.card_fingerprint) == (
        "mastercard",
        "fpLearnt1",
    )
    card = CardKey(KeyKind.CARD, "mastercard:fpLearnt1")
    moved = contract_store.card_history(card, SINCE)
    assert len(moved) == 3  # both queueing declines and the attempt
    assert [e.network_advice_code for e in moved if e.attempt_number == 1] == ["25"]
    assert len(contract_store.card_history(PM, SINCE)) == 3  # still found by the method
    # The other job, by its payment method alone, is held by the MAC 25 wait on the card.
    batch = contract_store.claim(NOW + timedelta(hours=1), 5, LEASE, rules=RULES)
    assert list(batch) == [] and len(batch.held) == 1
    [held] = batch.held
    assert held.job.state is JobState.SCHEDULED and held.job.network_rule == "mastercard_mac_25"
    stored = contract_store.get(held.job.id)
    assert stored is not None and stored.state is JobState.SCHEDULED
    assert stored.next_retry_at == NOW + timedelta(hours=24) and stored.lease_token is None
    assert stored.attempts == ()  # no attempt row for a held claim
    kinds = [e.kind.value for e in contract_store.entries_for_job(held.job.id)]
    assert kinds == ["retry_scheduled", "retry_postponed"]


def test_a_resent_attempt_keeps_its_entry_and_is_not_checked_again(
    contract_store: ContractStore,
) -> None:
    contract_store.insert(carded("t1"))
    [claimed] = contract_store.claim(NOW, 1, LEASE, rules=RULES)
    assert contract_store.rescue(NOW + 2 * LEASE).rescued == 1
    [again] = contract_store.claim(NOW + 2 * LEASE, 1, LEASE, rules=RULES)
    assert again.attempt_number == 1
    attempts = [e for e in contract_store.card_history(PM, SINCE) if e.attempt_number == 1]
    assert [e.at for e in attempts] == [NOW]  # the first send's entry, kept


def test_the_ledger_has_its_own_purge(contract_store: ContractStore) -> None:
    contract_store.insert(carded("t1"))
    job = contract_store.find("t1")
    assert job is not None
    assert contract_store.purge(NOW + timedelta(days=60)) == 0  # active: kept
    assert contract_store.purge_card_ledger(NOW, dry_run=True) == 1
    assert contract_store.purge_card_ledger(NOW - timedelta(hours=2)) == 0
    assert contract_store.purge_card_ledger(NOW) == 1
    assert contract_store.card_history(PM, SINCE) == []
