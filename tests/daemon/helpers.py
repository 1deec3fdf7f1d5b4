"""Shared helpers for the daemon tests: queue many jobs fast, read a ledger."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from contextlib import closing
from datetime import datetime
from pathlib import Path

from payretry.config import load_settings
from payretry.domain.ports import Store
from payretry.service.intake import new_job
from payretry.service.operations import Operations


def queue_jobs(
    store: Store,
    count: int,
    now: datetime,
    *,
    error_code: str = "network_error",
    metadata: Mapping[str, str] | None = None,
    prefix: str = "txn",
) -> None:
    """`count` jobs, all due at `now` (network_error waits 0s), amounts 1.00 .. count.00 USD."""
    rows = [
        (
            n,
            new_job(
                {
                    "transaction_id": f"{prefix}_{n:05d}",
                    "user_id": f"usr_{n % 50}",
                    "amount": f"{n}.00",
                    "currency": "USD",
                    "error_code": error_code,
                    "metadata": dict(metadata or {}),
                },
                now=now,
            ),
        )
        for n in range(1, count + 1)
    ]
    Operations(store, load_settings(env={}).policy()).queue_many(rows, now)


def ledger_rows(path: Path) -> list[tuple[str, int]]:
    """(idempotency key, sends) for every charge the simulated processor recorded."""
    if not path.exists():
        return []
    with closing(sqlite3.connect(path, timeout=30)) as conn:
        try:
            return list(conn.execute("SELECT idempotency_key, sends FROM charges"))
        except sqlite3.OperationalError:  # not created yet
            return []


def cli_env(db_url: str, ledger: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PAYRETRY_", "RETRY_"))}
    env.update(
        PAYRETRY_DATABASE_URL=db_url,
        PAYRETRY_SIMULATED_LEDGER=str(ledger),
        PAYRETRY_SIMULATED_SUCCESS_RATE="1",
        PAYRETRY_LOG_FORMAT="json",
        # Leases and intervals below 5s and 1s, so that these tests run in seconds.
        PAYRETRY_DATABASE_ALLOW_SHORT_LEASE="true",
        PAYRETRY_RUNNER_ALLOW_SHORT_INTERVAL="true",
        **extra,
    )
    return env


def payretry(*args: str, env: Mapping[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "payretry", *args],
        env=dict(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)
