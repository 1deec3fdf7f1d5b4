"""Many processes over one PostgreSQL database: exactly once, and a killed backend survived."""

from __future__ import annotations

import json
import signal
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, make_url

from payretry.clock import utcnow
from payretry.store.sql import open_store
from tests.daemon.helpers import cli_env, ledger_rows, payretry, queue_jobs, wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def states(url: str) -> dict[str, int]:
    store = open_store(url)
    try:
        return dict(store.stats(utcnow()).by_state)
    finally:
        store.close()


def test_eight_workers_process_each_of_5000_jobs_exactly_once(
    pg_url: str, tmp_path: object
) -> None:
    from pathlib import Path

    assert isinstance(tmp_path, Path)
    store = open_store(pg_url)
    queue_jobs(store, 5000, utcnow())
    store.close()
    ledger = tmp_path / "ledger.db"
    env = cli_env(pg_url, ledger, PAYRETRY_RUNNER_BATCH_SIZE="100")
    serves = [payretry("serve", "--interval", "0.5s", env=env) for _ in range(4)]
    cron = [payretry("run-due", "--json", env=env) for _ in range(4)]
    try:
        processed = 0
        for proc in cron:
            out, err = proc.communicate(timeout=240)
            assert proc.returncode == 0, err
            processed += json.loads(out)["processed"]
        wait_for(lambda: states(pg_url) == {"succeeded": 5000}, 240, "all 5000 jobs to succeed")
    finally:
        for proc in serves:
            proc.send_signal(signal.SIGTERM)
        for proc in serves:
            try:
                proc.communicate(timeout=60)
            except Exception:
                proc.kill()
                proc.communicate(timeout=10)
    assert [p.returncode for p in serves] == [0, 0, 0, 0]
    assert processed <= 5000
    rows = ledger_rows(ledger)
    assert len(rows) == 5000
    assert {sends for _, sends in rows} == {1}


def test_a_killed_backend_is_survived_and_its_job_processed_once(
    postgres_url: URL, pg_url: str, tmp_path: Path
) -> None:
    store = open_store(pg_url)
    queue_jobs(store, 20, utcnow())
    store.close()
    app = f"payretry_kill_{uuid.uuid4().hex[:8]}"
    worker_url = (
        make_url(pg_url)
        .update_query_dict({"application_name": app})
        .render_as_string(hide_password=False)
    )
    ledger = tmp_path / "ledger.db"
    env = cli_env(
        worker_url,
        ledger,
        PAYRETRY_SIMULATED_LATENCY="0.2s",
        PAYRETRY_LOCK_TIMEOUT="2s",
        PAYRETRY_RUNNER_BATCH_SIZE="5",
    )
    proc = payretry("serve", "--interval", "0.5s", env=env)
    admin = create_engine(postgres_url)
    try:
        wait_for(lambda: len(ledger_rows(ledger)) >= 3, 30, "the worker to be mid-run")
        with admin.begin() as conn:
            killed = conn.execute(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE application_name = :app"
                ),
                {"app": app},
            ).scalar_one()
        assert killed >= 1
        wait_for(lambda: states(pg_url) == {"succeeded": 20}, 60, "every job to succeed")
        assert proc.poll() is None, "the worker reconnected instead of dying"
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        admin.dispose()
    assert proc.returncode == 0, err
    rows = ledger_rows(ledger)
    assert len(rows) == 20  # one charge per job: a re-send after the kill is a replay
    store = open_store(pg_url)
    try:
        for job in store.list_jobs(limit=100):
            assert job.attempt_count == 1 and len(job.attempts) == 1
    finally:
        store.close()
