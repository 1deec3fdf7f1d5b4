"""The EventStore contract, on every backend: outbox entries read back in write order, and each
sink's cursor and lease (taken by one process at a time, fenced, backing off after a failure).

Entries are read with `settled=False`: on PostgreSQL, delivery (`settled`) also waits for every
transaction on the server that could still precede an entry, which other sessions on a shared
server hold back (tests/events/test_outbox.py tests that on its own)."""

from __future__ import annotations

from datetime import timedelta

from payretry.domain.changes import Queued
from payretry.domain.events import EventType
from payretry.domain.outbox import Cursor
from tests.contract.conftest import ContractStore
from tests.contract.test_store_contract import LEASE, NOW, make_job

MINUTE = timedelta(minutes=1)


def queue_three(store: ContractStore) -> list[str]:
    jobs = [store.insert(Queued(make_job(f"txn-{i}"))) for i in range(3)]
    return [job.id for job in jobs]


def test_entries_read_back_in_write_order(contract_store: ContractStore) -> None:
    store = contract_store
    ids = queue_three(store)
    [claimed] = store.claim(NOW, 1, LEASE, job_id=ids[1])
    everything = store.entries_after(Cursor(), 100, settled=False)
    assert [(e.job_id, e.kind) for e in everything] == [
        (ids[0], EventType.SCHEDULED),
        (ids[1], EventType.SCHEDULED),
        (ids[2], EventType.SCHEDULED),
        (ids[1], EventType.INITIATED),
    ]
    assert len({e.seq for e in everything}) == 4 and all(e.seq > 0 for e in everything)
    first_two = store.entries_after(Cursor(), 2, settled=False)
    assert first_two == everything[:2]
    rest = store.entries_after(Cursor.of(first_two[-1]), 100, settled=False)
    assert rest == everything[2:]
    assert store.count_after(Cursor()) == 4 and store.count_after(Cursor.of(everything[-1])) == 0
    assert store.recent_entries(limit=2) == [everything[3], everything[2]]  # newest first
    mine = store.entries_for_job(ids[1])
    assert [(e.kind, e.attempt) for e in mine] == [
        (EventType.SCHEDULED, 1),
        (EventType.INITIATED, claimed.attempt_number),
    ]
    assert mine[1].data["transaction_id"] == "txn-1" and mine[1].occurred_at == NOW
    assert store.entries_for_job("no-such-job") == []


def test_a_sink_lease_is_held_by_one_process_until_it_lapses(
    contract_store: ContractStore,
) -> None:
    store = contract_store
    queue_three(store)
    assert store.sink_states() == {}
    first = store.lease_sink("file", NOW, MINUTE)
    assert first is not None and first.lease_token and first.cursor == Cursor()
    assert first.lease_expires_at == NOW + MINUTE
    assert store.lease_sink("file", NOW + 30 * timedelta(seconds=1), MINUTE) is None  # held
    assert store.lease_sink("webhook", NOW, MINUTE) is not None  # each sink its own
    later = NOW + 2 * MINUTE
    second = store.lease_sink("file", later, MINUTE)  # the first process's lease lapsed
    assert second is not None and second.lease_token != first.lease_token
    entries = store.entries_after(Cursor(), 2, settled=False)
    cursor = Cursor.of(entries[-1])
    assert not store.advance_sink(first, cursor, 2, later, later + MINUTE)  # fenced
    assert store.advance_sink(second, cursor, 2, later, later + LEASE)
    state = store.sink_states()["file"]
    assert state.cursor == cursor and state.delivered == 2 and state.failures == 0
    assert state.lease_token == second.lease_token and state.lease_expires_at == later + LEASE
    assert store.count_after(state.cursor) == 1
    store.release_sink(first, later)  # a stale release changes nothing
    assert store.sink_states()["file"].lease_token == second.lease_token
    store.release_sink(second, later)
    released = store.sink_states()["file"]
    assert released.lease_token is None and released.cursor == cursor
    assert store.lease_sink("file", later, MINUTE) is not None  # free again at once
    assert sorted(store.sink_states()) == ["file", "webhook"]


def test_a_failed_sink_keeps_its_cursor_and_backs_off(contract_store: ContractStore) -> None:
    store = contract_store
    queue_three(store)
    state = store.lease_sink("webhook", NOW, MINUTE)
    assert state is not None
    retry_at = NOW + 4 * timedelta(seconds=1)
    store.sink_failed(state, "receiver down " * 100, retry_at, NOW)
    failed = store.sink_states()["webhook"]
    assert failed.failures == 1 and failed.retry_at == retry_at
    assert failed.last_error is not None and len(failed.last_error) == 500
    assert failed.lease_token is None and failed.cursor == Cursor()
    assert store.lease_sink("webhook", NOW + timedelta(seconds=3), MINUTE) is None  # backing off
    again = store.lease_sink("webhook", retry_at, MINUTE)
    assert again is not None and again.failures == 1
    store.sink_failed(again, "still down", retry_at + MINUTE, retry_at)
    assert store.sink_states()["webhook"].failures == 2
    third = store.lease_sink("webhook", retry_at + MINUTE, MINUTE)
    assert third is not None
    [entry] = store.entries_after(Cursor(), 1, settled=False)
    assert store.advance_sink(third, Cursor.of(entry), 1, retry_at + MINUTE, retry_at + LEASE)
    recovered = store.sink_states()["webhook"]
    assert recovered.failures == 0 and recovered.last_error is None
    assert recovered.retry_at is None and recovered.delivered == 1
    store.sink_failed(again, "a stale failure", NOW, NOW)  # fenced: changes nothing
    assert store.sink_states()["webhook"] == recovered
