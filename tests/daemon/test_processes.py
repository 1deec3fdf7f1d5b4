"""Real processes on one SQLite file: signals, a kill mid-attempt, and contention."""

from __future__ import annotations

import json
import signal
import sqlite3
from contextlib import closing
from datetime import timedelta
from pathlib import Path

import pytest

from payretry.clock import utcnow
from payretry.domain.models import JobState
from payretry.store.sql import SqlStore, open_store
from tests.daemon.helpers import cli_env, ledger_rows, payretry, queue_jobs, wait_for

pytestmark = pytest.mark.slow


def count(db: Path, sql: str) -> int:
    with closing(sqlite3.connect(db, timeout=30)) as conn:
        return int(conn.execute(sql).fetchone()[0])


def test_sigterm_finishes_in_flight_releases_the_rest_and_exits_0(tmp_path: Path) -> None:
    db = tmp_path / "p.db"
    store = open_store(f"sqlite:///{db}")
    queue_jobs(store, 30, utcnow())
    store.close()
    ledger = tmp_path / "ledger.db"
    env = cli_env(f"sqlite:///{db}", ledger, PAYRETRY_SIMULATED_LATENCY="1s")
    proc = payretry("serve", "--interval", "1s", "--concurrency", "3", env=env)
    try:
        wait_for(lambda: len(ledger_rows(ledger)) >= 3, 20, "three attempts in flight")
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert count(db, "SELECT count(*) FROM retry_jobs WHERE state = 'running'") == 0
    sent = {key for key, _ in ledger_rows(ledger)}
    succeeded = count(db, "SELECT count(*) FROM retry_jobs WHERE state = 'succeeded'")
    assert succeeded == len(sent) >= 3  # every attempt that started was finished and recorded
    assert count(db, "SELECT count(*) FROM retry_jobs WHERE state = 'scheduled'") == 30 - len(sent)
    assert count(db, "SELECT count(*) FROM retry_attempts WHERE outcome = 'pending'") == 0
    assert count(db, "SELECT count(*) FROM payretry_workers") == 0  # it said goodbye


def test_sigkill_mid_attempt_is_rescued_and_resent_with_the_same_key(tmp_path: Path) -> None:
    db = tmp_path / "p.db"
    url = f"sqlite:///{db}"
    store = open_store(url)
    queue_jobs(store, 1, utcnow())
    store.close()
    ledger = tmp_path / "ledger.db"
    slow = cli_env(url, ledger, PAYRETRY_SIMULATED_LATENCY="30s", PAYRETRY_LOCK_TIMEOUT="1s")
    proc = payretry("run-due", env=slow)
    try:
        wait_for(lambda: len(ledger_rows(ledger)) == 1, 20, "the request to reach the processor")
    finally:
        proc.kill()  # SIGKILL: no chance to record anything
        proc.communicate(timeout=10)
    assert count(db, "SELECT count(*) FROM retry_jobs WHERE state = 'running'") == 1
    fast = cli_env(url, ledger, PAYRETRY_LOCK_TIMEOUT="1s")
    wait_for(
        lambda: (
            count(
                db,
                "SELECT count(*) FROM retry_jobs WHERE lease_expires_at < "
                "strftime('%Y-%m-%d %H:%M:%f', 'now')",
            )
            == 1
        ),
        10,
        "the lease to expire",
    )
    rerun = payretry("run-due", "--json", env=fast)
    out, err = rerun.communicate(timeout=60)
    assert rerun.returncode == 0, err
    report = json.loads(out)
    assert report["rescued"] == 1 and report["succeeded"] == 1
    # One charge under one key, which was sent twice (the replay), and one attempt recorded.
    rows = ledger_rows(ledger)
    assert len(rows) == 1 and rows[0][1] == 2
    store = open_store(url)
    job = store.list_jobs()[0]
    store.close()
    assert job.state is JobState.SUCCEEDED
    assert job.attempt_count == 1
    assert [a.idempotency_key for a in job.attempts] == [rows[0][0]]


def test_two_serve_and_two_run_due_process_each_job_exactly_once(tmp_path: Path) -> None:
    db = tmp_path / "p.db"
    url = f"sqlite:///{db}"
    store: SqlStore = open_store(url)
    now = utcnow()
    queue_jobs(store, 2000, now)
    store.close()
    ledger = tmp_path / "ledger.db"
    env = cli_env(url, ledger, PAYRETRY_RUNNER_BATCH_SIZE="50")
    serves = [payretry("serve", "--interval", "0.2s", env=env) for _ in range(2)]
    cron = [payretry("run-due", "--json", env=env) for _ in range(2)]
    try:
        for proc in cron:
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err
            json.loads(out)
        wait_for(
            lambda: count(db, "SELECT count(*) FROM retry_jobs WHERE state = 'succeeded'") == 2000,
            120,
            "every job to succeed",
        )
    finally:
        for proc in serves:
            proc.send_signal(signal.SIGTERM)
        for proc in serves:
            try:
                proc.communicate(timeout=30)
            except Exception:
                proc.kill()
    assert [p.returncode for p in serves] == [0, 0]
    rows = ledger_rows(ledger)
    assert len(rows) == 2000  # every key recorded once ...
    assert {sends for _, sends in rows} == {1}  # ... and never sent twice
    assert count(db, "SELECT count(*) FROM retry_attempts") == 2000
    assert count(db, "SELECT count(*) FROM retry_jobs WHERE attempt_count != 1") == 0
    assert timedelta(0) <= utcnow() - now
