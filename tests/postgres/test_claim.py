"""The PostgreSQL claim: one statement (a CTE with FOR UPDATE SKIP LOCKED and a limit, then an
UPDATE ... RETURNING), which never waits for or takes a row another worker holds."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import create_engine, event, text

from payretry.clock import utcnow
from payretry.store.sql import open_store
from tests.daemon.helpers import queue_jobs

pytestmark = pytest.mark.postgres


def test_claim_is_one_statement_with_skip_locked(pg_url: str) -> None:
    store = open_store(pg_url)
    try:
        queue_jobs(store, 5, utcnow())
        seen: list[str] = []

        def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            if "retry_jobs" in statement:
                seen.append(" ".join(statement.split()))

        event.listen(store.engine, "before_cursor_execute", record)
        claimed = store.claim(utcnow(), 3, timedelta(minutes=5))
        event.remove(store.engine, "before_cursor_execute", record)
    finally:
        store.close()
    assert [c.job.transaction_id for c in claimed] == ["txn_00005", "txn_00004", "txn_00003"]
    jobs_statements = [s for s in seen if "retry_attempts" not in s]
    assert len(jobs_statements) == 1
    (statement,) = jobs_statements
    assert statement.startswith("WITH due AS")
    assert "FOR UPDATE SKIP LOCKED" in statement and "LIMIT" in statement
    assert "UPDATE retry_jobs" in statement and "RETURNING" in statement


def test_a_row_locked_by_another_worker_is_skipped_not_waited_for(pg_url: str) -> None:
    store = open_store(pg_url)
    other = create_engine(pg_url)
    try:
        queue_jobs(store, 3, utcnow())
        with other.connect() as conn:
            trans = conn.begin()
            conn.execute(  # another worker mid-claim holds the top job
                text("SELECT seq FROM retry_jobs WHERE transaction_id = 'txn_00003' FOR UPDATE")
            )
            claimed = store.claim(utcnow(), 3, timedelta(minutes=5))
            trans.rollback()
        assert [c.job.transaction_id for c in claimed] == ["txn_00002", "txn_00001"]
        again = store.claim(utcnow(), 3, timedelta(minutes=5))
        assert [c.job.transaction_id for c in again] == ["txn_00003"]
    finally:
        other.dispose()
        store.close()
