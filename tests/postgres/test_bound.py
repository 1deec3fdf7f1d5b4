"""The bounded queue on PostgreSQL: the victim query walks the due index backwards under
FOR UPDATE SKIP LOCKED, and a job another transaction holds (a claim in flight) is passed over,
never waited for."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import create_engine, text

from payretry.domain.bound import QueueBound
from payretry.domain.changes import Queued
from payretry.domain.models import JobState
from payretry.store.bound import victims_query
from payretry.store.sql import open_store
from tests.contract.test_store_contract import make_job

pytestmark = pytest.mark.postgres
NOW = datetime(2026, 11, 22, 12, 0, 0, tzinfo=UTC)


def test_the_victim_query_walks_the_due_index_backwards(pg_url: str) -> None:
    store = open_store(pg_url)
    try:
        jobs = [
            make_job(f"t{i}", priority=i % 50, next_retry_at=NOW + timedelta(minutes=i))
            for i in range(5000)
        ]
        store.insert_many([Queued(j) for j in jobs])
        with store.engine.begin() as conn:
            conn.execute(text("ANALYZE retry_jobs"))
            query = victims_query(5, lock=True).compile(
                dialect=store.engine.dialect, compile_kwargs={"literal_binds": True}
            )
            plan = "\n".join(row[0] for row in conn.execute(text(f"EXPLAIN {query}")))
        assert "Index Scan Backward using ix_retry_jobs_due" in plan, plan
        assert "Seq Scan" not in plan and "Sort" not in plan and "LockRows" in plan, plan
    finally:
        store.close()


def test_a_victim_held_by_another_transaction_is_passed_over(pg_url: str) -> None:
    store = open_store(pg_url)
    other = create_engine(pg_url)
    try:
        lowest = make_job("t-lowest", priority=1)
        next_lowest = make_job("t-next", priority=2)
        store.insert_many([Queued(lowest), Queued(next_lowest)])
        with other.connect() as conn:
            trans = conn.begin()
            conn.execute(  # a claim in flight holds the lowest job
                text("SELECT seq FROM retry_jobs WHERE transaction_id = 't-lowest' FOR UPDATE")
            )
            store.insert(Queued(make_job("t-new", priority=9)), bound=QueueBound(2))
            trans.rollback()
        assert store.find("t-lowest").state is JobState.SCHEDULED  # type: ignore[union-attr]
        assert store.find("t-next").state is JobState.EVICTED  # type: ignore[union-attr]
    finally:
        other.dispose()
        store.close()
