"""The bounded queue's store contract (domain/bound.py), on the twin, SQLite and PostgreSQL: a
full queue evicts the lowest-priority scheduled job with the latest next retry for a job of
higher priority, in the insert's transaction, or refuses and stores nothing."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import text

from payretry.domain.bound import QueueBound, QueueFull, eviction_order
from payretry.domain.changes import Queued
from payretry.domain.events import EventType
from payretry.domain.models import ACTIVE_STATES, Job, JobState
from payretry.domain.rollups import Metric
from payretry.store.bound import active_count, victims_query
from payretry.store.sql import SqlStore
from tests.contract.conftest import ContractStore
from tests.contract.test_store_contract import (
    LEASE,
    NOW,
    _assert_indexed,
    _plans,
    captured_selects,  # noqa: F401 - a fixture
    get,
    make_job,
    sqlite_store,  # noqa: F401 - a fixture
)

HOUR = timedelta(hours=1)


def queued(*jobs: Job) -> list[Queued]:
    return [Queued(job) for job in jobs]


def states(store: ContractStore, *jobs: Job) -> list[str]:
    return [get(store, job).state.value for job in jobs]


def active(store: ContractStore) -> int:
    return sum(
        n for state, n in store.stats(NOW).by_state.items() if JobState(state) in ACTIVE_STATES
    )


def fill(store: ContractStore) -> tuple[Job, Job, Job]:
    """Three scheduled jobs: priorities 10, 5 and 5, the last due latest."""
    high = make_job("txn-high", priority=10, next_retry_at=NOW + 5 * HOUR)
    low_early = make_job("txn-low-early", priority=5, next_retry_at=NOW + HOUR)
    low_late = make_job("txn-low-late", priority=5, next_retry_at=NOW + 2 * HOUR)
    store.insert_many(queued(high, low_early, low_late))
    return high, low_early, low_late


def test_under_the_bound_nothing_is_evicted(contract_store: ContractStore) -> None:
    jobs = fill(contract_store)
    new = make_job("txn-new", priority=1)
    contract_store.insert(Queued(new), bound=QueueBound(4))
    assert states(contract_store, *jobs, new) == ["scheduled"] * 4
    assert not any(e.kind is EventType.EVICTED for e in contract_store.recent_entries(limit=50))


def test_a_higher_job_evicts_the_lowest_with_the_latest_next_retry(
    contract_store: ContractStore,
) -> None:
    high, low_early, low_late = fill(contract_store)
    new = make_job("txn-new", priority=6, created_at=NOW)
    stored = contract_store.insert(Queued(new), bound=QueueBound(3))
    assert stored.state is JobState.SCHEDULED
    assert states(contract_store, high, low_early, low_late) == [
        "scheduled",
        "scheduled",
        "evicted",
    ]
    assert active(contract_store) == 3
    victim = get(contract_store, low_late)
    assert victim.next_retry_at is None and victim.updated_at == NOW
    assert victim.reason is not None and new.id in victim.reason and "max_active" in victim.reason
    (entry,) = contract_store.entries_for_job(low_late.id)[1:]
    assert entry.kind is EventType.EVICTED and entry.attempt == 1 and entry.occurred_at == NOW
    assert entry.data["evicted_by"] == new.id
    assert entry.data["evicted_by_transaction"] == "txn-new"
    assert entry.data["evicted_by_priority"] == 6 and entry.data["priority"] == 5
    assert entry.data["max_active"] == 3 and entry.data["reason"] == victim.reason
    events = entry.events()
    assert [e.type.value for e in events] == ["retry_evicted", "user_notification"]
    assert events[0].id == f"{low_late.id}:1:retry_evicted"
    assert contract_store.stats(NOW).by_state["evicted"] == 1
    ended = [r for r in contract_store.rollups() if r.metric is Metric.ENDED]
    assert [(r.key, r.count) for r in ended] == [("evicted", 1)]


def test_a_job_that_would_be_the_lowest_is_refused_and_nothing_stored(
    contract_store: ContractStore,
) -> None:
    jobs = fill(contract_store)
    before = len(contract_store.recent_entries(limit=50))
    for priority in (5, 4):  # equal: the job queued first keeps its place
        new = make_job(f"txn-{priority}", priority=priority)
        with pytest.raises(QueueFull) as raised:
            contract_store.insert(Queued(new), bound=QueueBound(3))
        assert raised.value.exit_code == 3 and new.id in raised.value.refused
        assert "would be the lowest" in str(raised.value) and "priority 5" in str(raised.value)
        assert contract_store.get(new.id) is None
    assert states(contract_store, *jobs) == ["scheduled"] * 3
    assert len(contract_store.recent_entries(limit=50)) == before


def test_never_evicts_running_awaiting_parked_or_an_attempt_without_outcome(
    contract_store: ContractStore,
) -> None:
    running = make_job("txn-running", priority=1)
    rescued = make_job("txn-rescued", priority=1)
    parked = make_job("txn-parked", priority=1)
    awaiting = make_job("txn-awaiting", priority=1, state=JobState.AWAITING_PAYER)
    contract_store.insert_many(queued(running, rescued, parked, awaiting))
    contract_store.claim(NOW, 1, LEASE, job_id=parked.id)
    contract_store.rescue(NOW + 2 * LEASE, max_rescues=0)  # parked: rescued too often
    contract_store.claim(NOW, 1, LEASE, job_id=rescued.id)
    contract_store.rescue(NOW + 2 * LEASE)  # back to scheduled, its attempt sent and unanswered
    contract_store.claim(NOW + 2 * LEASE, 1, LEASE, job_id=running.id)
    assert states(contract_store, running, rescued, parked, awaiting) == [
        "running",
        "scheduled",
        "parked",
        "awaiting_payer",
    ]
    new = make_job("txn-new", priority=1_000)
    with pytest.raises(QueueFull, match="no scheduled job can make room"):
        contract_store.insert(Queued(new), bound=QueueBound(4))
    assert contract_store.get(new.id) is None


def test_a_bulk_queue_evicts_as_many_as_it_needs(contract_store: ContractStore) -> None:
    high, low_early, low_late = fill(contract_store)
    new = [make_job(f"txn-new-{i}", priority=7 + i) for i in range(3)]
    contract_store.insert_many(queued(*new), bound=QueueBound(4))
    assert states(contract_store, high, low_early, low_late) == ["scheduled", "evicted", "evicted"]
    assert states(contract_store, *new) == ["scheduled"] * 3
    assert active(contract_store) == 4
    by = {
        e.data["evicted_by"]
        for job in (low_early, low_late)
        for e in contract_store.entries_for_job(job.id)
        if e.kind is EventType.EVICTED
    }
    assert by <= {job.id for job in new} and len(by) == 2


def test_a_bulk_queue_is_all_or_nothing_naming_its_lowest_rows(
    contract_store: ContractStore,
) -> None:
    jobs = fill(contract_store)
    # Room for one: two evictions needed; the row of priority 5 is not above the 5s.
    new = [make_job("txn-a", priority=9), make_job("txn-b", priority=5)]
    with pytest.raises(QueueFull) as raised:
        contract_store.insert_many(queued(*new), bound=QueueBound(3))
    assert set(raised.value.refused) == {new[1].id}
    assert "nothing written" in str(raised.value)
    assert all(contract_store.get(job.id) is None for job in new)
    assert states(contract_store, *jobs) == ["scheduled"] * 3


def test_new_jobs_never_evict_one_another(contract_store: ContractStore) -> None:
    new = [make_job(f"txn-{i}", priority=i) for i in range(3)]
    with pytest.raises(QueueFull) as raised:
        contract_store.insert_many(queued(*new), bound=QueueBound(2))
    assert set(raised.value.refused) == {new[0].id}
    assert contract_store.stats(NOW).total == 0


def test_a_bound_lowered_below_the_active_evicts_one_per_new_job(
    contract_store: ContractStore,
) -> None:
    jobs = fill(contract_store)
    new = make_job("txn-new", priority=50)
    contract_store.insert(Queued(new), bound=QueueBound(1))
    assert sorted(states(contract_store, *jobs)) == ["evicted", "scheduled", "scheduled"]
    assert active(contract_store) == 3


def test_an_evicted_job_is_final(contract_store: ContractStore) -> None:
    _, _, low_late = fill(contract_store)
    contract_store.insert(Queued(make_job("txn-new", priority=99)), bound=QueueBound(3))
    assert get(contract_store, low_late).state.final
    assert low_late.transaction_id not in contract_store.active_for([low_late.transaction_id])
    assert not [
        c for c in contract_store.claim(NOW + 10 * HOUR, 10, LEASE) if c.job.id == low_late.id
    ]
    # Its transaction may be queued again (when there is room).
    again = make_job(low_late.transaction_id, priority=5)
    contract_store.insert(Queued(again), bound=QueueBound(4))
    assert get(contract_store, again).state is JobState.SCHEDULED


# -- SQLite: the bound's queries use indexes -------------------------------------------------------


def test_the_victim_and_count_queries_never_scan_the_jobs(
    sqlite_store: SqlStore,  # noqa: F811
    captured_selects: list[tuple[str, Any]],  # noqa: F811
) -> None:
    sqlite_store.insert_many(
        queued(
            *[
                make_job(f"txn-{i}", priority=i % 7, next_retry_at=NOW + i * HOUR)
                for i in range(300)
            ]
        )
    )
    sqlite_store.insert_many(
        queued(*[make_job(f"paid-{i}", state=JobState.SUCCEEDED) for i in range(300)])
    )
    with sqlite_store.engine.begin() as conn:
        conn.execute(text("ANALYZE"))
    captured_selects.clear()
    sqlite_store.insert(Queued(make_job("txn-new", priority=100)), bound=QueueBound(300))
    plans = [p for p in _plans(sqlite_store, captured_selects) if "FROM retry_jobs" in p[0]]
    victims = [p for p in plans if "ORDER BY retry_jobs.priority" in p[0]]
    counts = [p for p in plans if "count(" in p[0].lower()]
    assert len(victims) == 1 and len(counts) == 1, plans
    _assert_indexed(victims + counts)
    for statement, lines in victims:
        # The due index read backwards gives the order: the query stops at its limit.
        assert not any("TEMP B-TREE" in line for line in lines), (statement, lines)
        assert any("ix_retry_jobs_due" in line for line in lines), (statement, lines)


def test_the_queries_pick_what_the_twin_picks(sqlite_store: SqlStore) -> None:  # noqa: F811
    jobs = [
        make_job(f"txn-{i}", priority=i % 3, next_retry_at=NOW + (i % 5) * HOUR) for i in range(30)
    ]
    sqlite_store.insert_many(queued(*jobs))
    with sqlite_store.engine.connect() as conn:
        assert active_count(conn) == 30
        rows = conn.execute(victims_query(4, lock=False)).all()
    stored = sorted((get(sqlite_store, j) for j in jobs), key=eviction_order)
    assert [r.id for r in rows] == [j.id for j in stored[:4]]
