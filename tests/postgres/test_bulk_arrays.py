"""A bulk queue on PostgreSQL goes as one INSERT ... SELECT FROM unnest(arrays) per batch: it
stores what the row-by-row executemany stored (NULLs, JSON, aware times), in queue order."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from payretry.domain.changes import Queued
from payretry.store.sql import open_store
from payretry.store.tables import JOBS, OUTBOX
from tests.contract.test_store_contract import make_job

pytestmark = pytest.mark.postgres
NOW = datetime(2026, 11, 22, 12, 0, 0, tzinfo=UTC)


def test_a_bulk_queue_stores_each_row_as_the_row_path_does(pg_url: str) -> None:
    store = open_store(pg_url)
    try:
        jobs = [
            replace(
                make_job(f"t{i}", priority=i, next_retry_at=NOW + timedelta(minutes=i)),
                metadata={"order": f"ord_{i}", "note": 'ü "q"'} if i % 2 else {},
                decline_code="insufficient_funds" if i % 3 else None,
            )
            for i in range(7)
        ]
        store.insert_many([Queued(j) for j in jobs[1:]])
        store.insert(Queued(jobs[0]))  # the row path, for comparison
        with store.engine.connect() as conn:
            rows = conn.execute(select(JOBS).order_by(JOBS.c.seq)).all()
            entry_jobs = (
                conn.execute(select(OUTBOX.c.job_id).order_by(OUTBOX.c.seq)).scalars().all()
            )
        stored = [*reversed(jobs[1:]), jobs[0]]  # a bulk queue in claim order: t6 first
        assert [r.transaction_id for r in rows] == [j.transaction_id for j in stored]
        assert entry_jobs == [j.id for j in stored]
        for row, job in zip(rows, stored, strict=True):
            assert row.meta == dict(job.metadata)
            assert row.next_retry_at == job.next_retry_at and row.next_retry_at.tzinfo is not None
            assert row.decline_code == job.decline_code and row.lease_token is None
    finally:
        store.close()
