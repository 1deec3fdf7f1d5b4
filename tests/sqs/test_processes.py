"""Real processes: `serve` producing into the moto server's queue, two `payretry worker`
processes consuming it, 1,000 jobs on one SQLite file: each attempt made once, every job final,
every worker stopped by SIGTERM with exit 0 and nothing left in the queue."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import time
from contextlib import closing
from pathlib import Path

import pytest

from payretry.clock import utcnow
from payretry.store.sql import open_store
from tests.daemon.helpers import cli_env, ledger_rows, payretry, queue_jobs, wait_for
from tests.sqs.conftest import Sqs

pytestmark = pytest.mark.slow


def count(db: Path, sql: str) -> int:
    with closing(sqlite3.connect(db, timeout=30)) as conn:
        return int(conn.execute(sql).fetchone()[0])


def stop(procs: list[subprocess.Popen[str]]) -> list[tuple[int, str]]:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    done = []
    for proc in procs:
        try:
            _, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate(timeout=10)
        done.append((proc.returncode, err))
    return done


def test_serve_and_two_workers_process_1000_jobs_each_once(tmp_path: Path, sqs: Sqs) -> None:
    db = tmp_path / "p.db"
    url = f"sqlite:///{db}"
    store = open_store(url)
    now = utcnow()
    queue_jobs(store, 800, now, prefix="ok")
    # 200 fail once with network_error, then succeed: the worker sends their second attempt.
    queue_jobs(store, 200, now, prefix="re", metadata={"simulate": "network_error,succeeded"})
    store.close()
    config = tmp_path / "payretry.toml"
    config.write_text(
        '[policy.network_error]\nretry = true\nmax_attempts = 3\ndelays = ["0s", "1s", "1s"]\n'
    )
    ledger = tmp_path / "ledger.db"
    env = cli_env(
        url,
        ledger,
        **sqs.variables(),
        PAYRETRY_CONFIG=str(config),
        PAYRETRY_SQS_WAIT_TIME="1s",
        PAYRETRY_RUNNER_BATCH_SIZE="100",
        # moto may hand one message to two concurrent receives (at least once, as SQS may):
        # the copy that finds the job leased waits out the lease, then is dropped.
        PAYRETRY_LOCK_TIMEOUT="5s",
        # A receive that fails inside moto (a 500, retried) leaves its messages in flight: they
        # come back after the visibility timeout, as SQS's would.
        PAYRETRY_SQS_VISIBILITY_TIMEOUT="5s",
    )
    started = time.monotonic()
    procs = [payretry("serve", "--interval", "0.5s", env=env)]
    procs += [payretry("worker", "--concurrency", "4", env=env) for _ in range(2)]
    try:
        wait_for(
            lambda: count(db, "SELECT count(*) FROM retry_jobs WHERE state = 'succeeded'") == 1000,
            120,  # about 30 s on an idle machine
            "every job to succeed",
        )
        wait_for(
            lambda: sqs.depth() == {"visible": 0, "in_flight": 0, "delayed": 0},
            20,
            "every message deleted",
        )
    finally:
        results = stop(procs)
    elapsed = time.monotonic() - started
    for code, err in results:
        assert code == 0, err[-2000:]
    rows = ledger_rows(ledger)
    assert len(rows) == 1200  # 800 + 200 x 2 attempts
    assert {sends for _, sends in rows} == {1}  # no key ever sent twice
    assert len({key for key, _ in rows}) == 1200
    assert count(db, "SELECT count(*) FROM retry_attempts") == 1200
    assert count(db, "SELECT count(*) FROM retry_attempts WHERE outcome = 'pending'") == 0
    assert count(db, "SELECT count(*) FROM retry_jobs WHERE state != 'succeeded'") == 0
    assert count(db, "SELECT count(*) FROM retry_jobs WHERE dispatch_message_id IS NULL") == 0
    print(f"1000 jobs, 1200 attempts through SQS in {elapsed:.1f}s")
