"""Four `run-due` processes at once over one SQLite file: every job attempted exactly once.

The simulated processor records each idempotency key in a ledger (primary key), as a real
processor would honour it; a job attempted twice would show as a second attempt row, a replayed
key, or a "processed" total above the number of jobs.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from payretry.domain.changes import Queued
from payretry.domain.models import Job, JobState
from payretry.domain.money import Money
from payretry.service.operations import new_job_id
from payretry.store.sql import open_store

JOBS = 2_000
PROCESSES = 4


def _due_jobs(now: datetime) -> list[Job]:
    return [
        Job(
            id=new_job_id(),
            transaction_id=f"txn-{n:05d}",
            user_id=f"user-{n % 97}",
            money=Money(100 + n, "USD"),
            error_code="processing_error",
            decline_code=None,
            error_message=None,
            state=JobState.SCHEDULED,
            attempt_count=0,
            max_attempts=3,
            next_retry_at=now - timedelta(seconds=1 + n % 60),
            created_at=now - timedelta(minutes=5),
            updated_at=now - timedelta(minutes=5),
            expires_at=None,
            priority=n % 10,
        )
        for n in range(JOBS)
    ]


def _ledger_rows(path: Path) -> list[tuple[str, str, str]]:
    conn = sqlite3.connect(path)
    try:
        return [
            (str(key), str(txn), str(outcome))
            for key, txn, outcome in conn.execute(
                "SELECT idempotency_key, transaction_id, outcome FROM charges"
            )
        ]
    finally:
        conn.close()


@pytest.mark.slow
def test_four_run_due_processes_attempt_each_job_exactly_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    ledger = tmp_path / "ledger.db"
    store = open_store(url)
    try:
        jobs = _due_jobs(datetime.now(UTC))
        store.insert_many([Queued(j) for j in jobs])
        assert store.stats(datetime.now(UTC)).due_now == JOBS
    finally:
        store.close()

    env = {
        **os.environ,
        "PAYRETRY_SIMULATED_LEDGER": str(ledger),
        "PAYRETRY_SIMULATED_SUCCESS_RATE": "1",
        # Small batches, so the four runners interleave their claims over the whole run.
        "PAYRETRY_RUNNER_BATCH_SIZE": "50",
    }
    command = [sys.executable, "-m", "payretry", "--db", url, "run-due", "--json"]
    runners = [
        subprocess.Popen(
            command, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for _ in range(PROCESSES)
    ]
    outputs: list[tuple[int, bytes, bytes]] = []
    try:
        for runner in runners:
            out, err = runner.communicate(timeout=120)  # a guard against a hang, not a goal
            outputs.append((runner.returncode, out, err))
    finally:
        for runner in runners:
            if runner.poll() is None:
                runner.kill()
                runner.wait()

    reports: list[dict[str, Any]] = []
    for code, out, err in outputs:
        assert code == 0, err.decode()
        reports.append(json.loads(out))
    assert sum(r["processed"] for r in reports) == JOBS, [r["processed"] for r in reports]
    assert sum(r["succeeded"] for r in reports) == JOBS
    for report in reports:
        assert report["lost_lease"] == 0 and report["rescued"] == 0
        assert report["processed"] == len(report["results"])
    attempted = [r["transaction_id"] for report in reports for r in report["results"]]
    assert len(attempted) == len(set(attempted)) == JOBS

    store = open_store(url)
    try:
        stats = store.stats(datetime.now(UTC))
        assert dict(stats.by_state) == {JobState.SUCCEEDED.value: JOBS}
        assert dict(stats.attempts_by_outcome) == {"succeeded": JOBS}
        finished = store.list_jobs(state=JobState.SUCCEEDED, limit=JOBS + 1)
    finally:
        store.close()
    assert len(finished) == JOBS
    expected_keys = {f"payretry:{job.id}:1" for job in jobs}
    for job in finished:
        assert job.attempt_count == 1
        assert [a.idempotency_key for a in job.attempts] == [f"payretry:{job.id}:1"]

    charges = _ledger_rows(ledger)
    assert len(charges) == JOBS
    assert {key for key, _, _ in charges} == expected_keys
    assert {txn for _, txn, _ in charges} == {job.transaction_id for job in jobs}
    assert {outcome for _, _, outcome in charges} == {"succeeded"}
