"""More of the Store contract, on every backend: the telemetry metrics read, what is due,
purging finished jobs, and the daemons' heartbeats."""

from __future__ import annotations

import sqlite3
import threading
from datetime import timedelta
from pathlib import Path

import pytest

from payretry.domain.changes import Finish, Queued
from payretry.domain.models import JobState
from payretry.domain.outbox import Cursor
from payretry.domain.policy import RetryPolicy
from payretry.domain.results import AttemptResult
from payretry.store import engine
from payretry.store.engine import checkpoint
from payretry.store.purge import Holds
from payretry.store.sql import open_store
from tests.contract.conftest import ContractStore
from tests.contract.test_store_contract import LEASE, NOW, failed_retry, make_job, succeeded

MINUTE = timedelta(minutes=1)


def test_telemetry(contract_store: ContractStore) -> None:
    store = contract_store
    store.insert(Queued(make_job("due", priority=1, next_retry_at=NOW - 10 * MINUTE)))
    store.insert(Queued(make_job("later", priority=1, next_retry_at=NOW + 10 * MINUTE)))
    store.insert(Queued(make_job("paid", priority=9)))
    store.insert(Queued(make_job("declined", priority=8)))
    store.insert(Queued(make_job("running", priority=7)))
    store.insert(Queued(make_job("old", state=JobState.FAILED)))
    c_paid, c_declined, _ = store.claim(NOW, 3, LEASE)
    declined = AttemptResult.failure("card_declined", "stolen_card")
    decision = RetryPolicy.standard().decide(c_declined.job, 1, declined, NOW)
    assert store.finish([succeeded(c_paid, NOW), Finish(c_declined, declined, decision, NOW)]) == [
        True,
        True,
    ]
    found = store.telemetry(NOW, ["file", "never_ran"])
    assert found.at == NOW
    assert dict(found.by_state) == {"scheduled": 2, "running": 1, "succeeded": 1, "failed": 2}
    assert dict(found.attempts_by_number) == {1: 3}  # any outcome, pending too
    assert dict(found.failures) == {("stolen_card", 1): 1}
    assert (found.succeeded, found.finished) == (1, 2) and found.success_rate == 0.5
    assert found.queue_size == 3
    assert found.due_now == 1 and found.oldest_due_at == NOW - 10 * MINUTE
    assert found.oldest_due_age == 10 * MINUTE
    changes = store.count_after(Cursor())
    assert changes == 6 + 3 + 2  # six queued, three claimed, two finished
    assert dict(found.pending_events) == {"file": changes, "never_ran": changes}
    assert store.telemetry(NOW).pending_events == {}


def test_oldest_due_and_the_due_preview(contract_store: ContractStore) -> None:
    store = contract_store
    assert store.oldest_due(NOW) is None
    store.insert(Queued(make_job("a", next_retry_at=NOW - MINUTE, priority=1)))
    store.insert(Queued(make_job("b", next_retry_at=NOW - 5 * MINUTE, priority=2)))
    store.insert(Queued(make_job("c", next_retry_at=NOW + MINUTE, priority=3)))
    assert store.oldest_due(NOW) == NOW - 5 * MINUTE
    assert store.oldest_due(NOW - 10 * MINUTE) is None
    assert [j.transaction_id for j in store.due_preview(NOW + MINUTE, 10)] == ["c", "b", "a"]
    store.claim(NOW, 10, LEASE)
    assert store.oldest_due(NOW) is None  # running jobs are not due


def test_purge_removes_old_final_jobs_and_their_attempts(contract_store: ContractStore) -> None:
    store = contract_store
    store.insert(Queued(make_job("paid")))
    store.insert(Queued(make_job("waiting", next_retry_at=NOW + timedelta(days=40))))
    [claimed] = store.claim(NOW, 1, LEASE)
    store.finish([succeeded(claimed, NOW)])
    store.insert(Queued(make_job("recent", state=JobState.CANCELLED, created_at=NOW + MINUTE)))
    cutoff = NOW + timedelta(seconds=1)
    assert store.purge(cutoff, dry_run=True) == 1
    assert store.find("paid") is not None  # a dry run removes nothing
    assert store.purge(cutoff) == 1
    assert store.find("paid") is None and store.get(claimed.job.id) is None
    assert {j.transaction_id for j in store.list_jobs()} == {"waiting", "recent"}
    assert store.stats(NOW).attempts_by_outcome == {}  # its attempt went with it
    assert store.purge(NOW + timedelta(days=400)) == 1  # never the active one
    again = store.insert(Queued(make_job("paid")))  # the transaction may be queued again
    assert again.state is JobState.SCHEDULED


def test_beats_name_each_daemon_newest_first(contract_store: ContractStore) -> None:
    store = contract_store
    assert store.workers() == []
    store.beat("host-a", "serve", timedelta(seconds=30), NOW)
    store.beat("host-b", "serve", timedelta(seconds=10), NOW + MINUTE)
    store.beat("host-a", "serve", timedelta(seconds=60), NOW + 2 * MINUTE)
    a, b = store.workers()
    assert (a.name, a.kind, a.started_at, a.beat_at) == ("host-a", "serve", NOW, NOW + 2 * MINUTE)
    assert a.interval == timedelta(seconds=60)
    assert (b.name, b.beat_at, b.interval) == ("host-b", NOW + MINUTE, timedelta(seconds=10))
    store.forget_worker("host-a")
    store.forget_worker("nobody")
    assert [w.name for w in store.workers()] == ["host-b"]


def test_a_failed_attempt_reschedules_and_counts_in_the_stats(
    contract_store: ContractStore,
) -> None:
    store = contract_store
    store.insert(Queued(make_job("t")))
    [claimed] = store.claim(NOW, 1, LEASE)
    store.finish([failed_retry(claimed, NOW, NOW + 30 * MINUTE)])
    stats = store.stats(NOW)
    assert stats.due_now == 0 and stats.due_next_hour == 1
    assert dict(stats.success_by_attempt) == {1: (0, 1)}


def test_purge_goes_through_many_batches_and_keeps_what_is_active_or_recent(
    contract_store: ContractStore,
) -> None:
    store = contract_store
    old = NOW - timedelta(days=60)
    queued = []
    for n in range(1_300):  # more than the first batches hold, active and recent ones between
        if n % 100 == 7:
            job = make_job(f"active-{n}", next_retry_at=NOW + timedelta(days=1))
        elif n % 100 == 50:
            job = make_job(f"recent-{n}", state=JobState.CANCELLED, created_at=NOW)
        else:
            job = make_job(f"old-{n}", state=JobState.CANCELLED, created_at=old)
        queued.append(Queued(job))
    store.insert_many(queued)
    cutoff = NOW - timedelta(days=30)
    assert store.purge(cutoff, dry_run=True) == 1_274
    assert store.purge(cutoff) == 1_274
    left = {j.transaction_id for j in store.list_jobs(limit=100)}
    assert left == {f"active-{n}" for n in range(7, 1_300, 100)} | {
        f"recent-{n}" for n in range(50, 1_300, 100)
    }
    assert store.purge(cutoff) == 0


def test_purge_on_sqlite_times_its_holds_of_the_lock_apart_from_its_wait(
    tmp_path: Path,
) -> None:
    """Another writer keeps the lock for 0.4 s as the purge starts: the purge waits that out,
    and what it reports as held is only its own transaction's time."""
    store = open_store(f"sqlite:///{tmp_path / 'held.db'}")
    try:
        old = NOW - timedelta(days=60)
        store.insert_many(
            [
                Queued(make_job(f"old-{n}", state=JobState.CANCELLED, created_at=old))
                for n in range(10)
            ]
        )
        other = sqlite3.connect(tmp_path / "held.db", isolation_level=None, check_same_thread=False)
        other.execute("BEGIN IMMEDIATE")
        release = threading.Timer(0.4, other.rollback)
        release.start()
        holds = Holds()
        try:
            assert store.purge(NOW - timedelta(days=30), holds=holds) == 10
        finally:
            release.join()
            other.close()
    finally:
        store.close()
    assert holds.transactions == 2  # one batch (10 < the first size), then the webhook records
    assert holds.longest_wait >= 0.3  # the first transaction waited for the other writer
    assert 0 < holds.longest < holds.longest_wait  # ... and that wait is not in its hold


def test_checkpoint_copies_the_wal_into_the_database_file(tmp_path: Path) -> None:
    path = tmp_path / "wal.db"
    store = open_store(f"sqlite:///{path}")
    try:
        old = NOW - timedelta(days=60)
        store.insert_many(
            [
                Queued(make_job(f"old-{n}", state=JobState.CANCELLED, created_at=old))
                for n in range(500)
            ]
        )
        before = path.stat().st_size  # the rows are in the WAL (under its autocheckpoint)
        checkpoint(store.engine)
        assert path.stat().st_size > before
    finally:
        store.close()


def test_the_sqlite_purge_checkpoints_between_its_batches_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[object] = []
    monkeypatch.setattr(engine, "checkpoint", calls.append)
    store = open_store(f"sqlite:///{tmp_path / 'between.db'}")
    try:
        old = NOW - timedelta(days=60)
        store.insert_many(
            [
                Queued(make_job(f"old-{n}", state=JobState.CANCELLED, created_at=old))
                for n in range(1_200)
            ]
        )
        holds = Holds()
        assert store.purge(NOW - timedelta(days=30), holds=holds) == 1_200
    finally:
        store.close()
    batches = holds.transactions - 1  # the last transaction removes the webhook records
    assert batches >= 2
    assert calls == [store.engine] * (batches - 1)  # after each batch but the last


def test_every_purge_takes_its_batches_from_one_place(tmp_path: Path, pg_url: str) -> None:
    """The jobs', the outbox's and the card ledger's purges take their batches from
    purge_batches: on SQLite they checkpoint between batches; on PostgreSQL they need not."""
    from payretry.store.engine import make_engine, purge_batches

    sqlite = make_engine(f"sqlite:///{tmp_path / 'b.db'}")
    postgres = make_engine(pg_url)
    try:
        holds = Holds()
        on_sqlite = purge_batches(sqlite, holds)
        assert on_sqlite.holds is holds and on_sqlite.between is not None
        on_sqlite.between()  # a PASSIVE checkpoint of an empty WAL: no error, no lock kept
        assert purge_batches(postgres).between is None
    finally:
        sqlite.dispose()
        postgres.dispose()
