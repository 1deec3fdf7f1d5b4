"""The `statements` section of scripts/bench.py (in-process): payretry beside a plain sqlite3
program running payretry's own statements (same table, same indexes, same columns, same SQL per
batch), which tells what the Python around the SQL costs, apart from what the SQL design costs
(for that, read payretry against the lean limit in the `sqlite` section).

(a) bulk queue: N row dicts validated by `payretry.service.intake.new_job` and queued with
    `Operations.queue_many` into a fresh SQLite file, beside a plain `sqlite3` program inserting
    the same rows with `executemany` in one transaction.
(b) run-due: `Runner.run_due()` over N due jobs with the simulated processor (success rate 1,
    zero latency), beside a plain `sqlite3` program doing the same SQL work per batch of the
    same size: close lapsed windows; claim (BEGIN IMMEDIATE, the due ids in priority order with
    a limit, mark them running under a lease token and expiry, insert the attempt rows, COMMIT);
    then finish (attempt outcome and job state, both fenced by the lease token, COMMIT).
The two sides take turns; with --repeat each runs that many times and its best run counts.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from bench_common import EXPONENTS, checkpoint_copy, count_states, make_rows, sqlite_url

# The queue mix: (error code, decline code, weight). All retryable, so every row is queued.
# Long enough that every queued job is due by the time run-due starts (the longest first delay
# in the default policy is 24h).
QUEUE_BACKDATE = timedelta(days=3)


def create_schema(path: Path) -> None:
    """An empty database with payretry's own schema (tables, indexes, schema version)."""
    from payretry.store.sql import open_store

    open_store(sqlite_url(path)).close()


def connect(path: Path) -> sqlite3.Connection:
    """A plain sqlite3 connection set up as payretry sets up its own (WAL, NORMAL sync, FKs)."""
    conn = sqlite3.connect(path, timeout=30, isolation_level=None)
    conn.execute("PRAGMA busy_timeout = 30000")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def sql_time(value: datetime) -> str:
    """How SQLAlchemy's SQLite DateTime stores a (naive UTC) datetime."""
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


@dataclass
class Took:
    """Wall-clock and process CPU seconds of one measured stretch."""

    wall: float = 0.0
    cpu: float = 0.0


@contextmanager
def timer() -> Iterator[Took]:
    took = Took()
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        yield took
    finally:
        took.wall = time.perf_counter() - wall
        took.cpu = time.process_time() - cpu


# -- (a) bulk queue -----------------------------------------------------------------------------


def queue_payretry(path: Path, rows: Sequence[dict[str, Any]], now: datetime) -> Took:
    """Validate and queue every row through payretry; the time it took (store open excluded)."""
    from payretry.domain.policy import RetryPolicy
    from payretry.service.intake import new_job
    from payretry.service.operations import Operations
    from payretry.store.sql import open_store

    store = open_store(sqlite_url(path))
    try:
        operations = Operations(store, RetryPolicy.standard())
        with timer() as took:
            requests = [(line, new_job(fields, now=now)) for line, fields in enumerate(rows, 1)]
            result = operations.queue_many(requests, now)
    finally:
        store.close()
    if result.created != len(rows):
        raise SystemExit(f"payretry queued {result.created} of {len(rows)} rows")
    return took


_INSERT_JOB = (
    "INSERT INTO retry_jobs (id, transaction_id, user_id, amount_minor, currency, error_code,"
    " decline_code, error_message, state, attempt_count, max_attempts, next_retry_at,"
    " created_at, updated_at, expires_at, priority, payment_intent, customer, payment_method,"
    " checkout_session, meta, reason, policy_code, lease_token, lease_expires_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
# The baseline's stand-in for the policy: first delay and max attempts per code.
_FIRST = {
    "network_error": (timedelta(0), 3),
    "insufficient_funds": (timedelta(hours=24), 2),
    "processing_error": (timedelta(minutes=1), 3),
    "authentication_failed": (timedelta(minutes=5), 2),
    "rate_limit_exceeded": (timedelta(minutes=30), 3),
    "service_unavailable": (timedelta(minutes=1), 3),
    "do_not_honor": (timedelta(hours=24), 2),
}
_DEFAULT_FIRST = (timedelta(minutes=5), 2)
_EXPONENTS = EXPONENTS


def queue_baseline(path: Path, rows: Sequence[dict[str, Any]], now: datetime) -> Took:
    """Plain sqlite3: turn each row into its column values, executemany in one transaction.

    No validation; the same columns payretry writes, with values of the same shape.
    """
    conn = connect(path)
    try:
        with timer() as took:
            stamp = sql_time(now)
            params = []
            for row in rows:
                code = row.get("decline_code") or row["error_code"]
                delay, max_attempts = _FIRST.get(code, _DEFAULT_FIRST)
                exponent = _EXPONENTS[row["currency"]]
                minor = int(Decimal(row["amount"]).scaleb(exponent))
                params.append(
                    (
                        uuid.uuid4().hex,
                        row["transaction_id"],
                        row["user_id"],
                        minor,
                        row["currency"],
                        row["error_code"],
                        row.get("decline_code"),
                        row.get("error_message"),
                        "scheduled",
                        0,
                        max_attempts,
                        sql_time(now + delay),
                        stamp,
                        stamp,
                        None,
                        minor * 10 ** (2 - exponent) if exponent <= 2 else minor // 10,
                        row.get("payment_intent"),
                        row.get("customer"),
                        row.get("payment_method"),
                        row.get("checkout_session"),
                        json.dumps(row.get("metadata") or {}),
                        f"error code {code}: policy row {code!r} waits before attempt 1",
                        code,
                        None,
                        None,
                    )
                )
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(_INSERT_JOB, params)
            conn.execute("COMMIT")
    finally:
        conn.close()
    return took


# -- (b) run-due --------------------------------------------------------------------------------


def run_due_payretry(path: Path, batch_size: int | None = None) -> tuple[Took, int, int]:
    """Runner.run_due over the database; (time taken, jobs processed, batch size)."""
    from payretry.clock import utcnow
    from payretry.domain.policy import RetryPolicy
    from payretry.processors.simulated import SimulatedProcessor
    from payretry.service.runner import Runner
    from payretry.store.sql import open_store

    store = open_store(sqlite_url(path))
    try:
        runner = Runner(
            store, RetryPolicy.standard(), SimulatedProcessor(success_rate=1.0), clock=utcnow
        )
        if batch_size is not None:
            runner.batch_size = batch_size
        with timer() as took:
            report = runner.run_due()
    finally:
        store.close()
    return took, report.processed, runner.batch_size


_ABANDON = (
    "UPDATE retry_jobs SET state = 'abandoned', reason = ?, next_retry_at = NULL, updated_at = ?"
    " WHERE state = 'scheduled' AND expires_at <= ? RETURNING seq"
)
_PICK = (
    "SELECT seq FROM retry_jobs WHERE state = 'scheduled' AND next_retry_at <= ?"
    " ORDER BY priority DESC, next_retry_at, seq LIMIT ?"
)
# NOT INDEXED: look the rows up by primary key; left to itself SQLite walks an index on state
# through every scheduled job (payretry's claim avoids the same trap).
_LEASE = (
    "UPDATE retry_jobs NOT INDEXED SET state = 'running', lease_token = ?, lease_expires_at = ?,"
    " updated_at = ? WHERE seq IN ({marks}) AND state = 'scheduled'"
    " RETURNING seq, id, attempt_count, max_attempts, error_code"
)
_ATTEMPT = (
    "INSERT INTO retry_attempts (job_seq, number, idempotency_key, outcome, started_at)"
    " VALUES (?, ?, ?, 'pending', ?) ON CONFLICT (job_seq, number) DO NOTHING"
)
_FINISH_ATTEMPT = (
    "UPDATE retry_attempts SET outcome = ?, finished_at = ?, error_code = NULL,"
    " decline_code = NULL, message = NULL, reference = ?, decision = ?, next_retry_at = NULL"
    " WHERE job_seq = ? AND number = ? AND EXISTS (SELECT 1 FROM retry_jobs"
    " WHERE seq = ? AND lease_token = ? AND state = 'running')"
)
_FINISH_JOB = (
    "UPDATE retry_jobs SET state = ?, attempt_count = ?, max_attempts = ?, next_retry_at = NULL,"
    " reason = ?, policy_code = ?, lease_token = NULL, lease_expires_at = NULL, updated_at = ?"
    " WHERE seq = ? AND lease_token = ? AND state = 'running'"
)


def run_due_baseline(path: Path, batch_size: int) -> tuple[Took, int]:
    """The same SQL work as run-due, written by hand with sqlite3; (time taken, processed)."""
    conn = connect(path)
    processed = 0
    lease_for = timedelta(minutes=5)
    try:
        with timer() as took:
            while True:
                now = datetime.now(UTC)
                stamp = sql_time(now)
                conn.execute("BEGIN IMMEDIATE")
                conn.execute(_ABANDON, ("the payment window closed", stamp, stamp)).fetchall()
                conn.execute("COMMIT")
                token = uuid.uuid4().hex
                conn.execute("BEGIN IMMEDIATE")
                seqs = [r[0] for r in conn.execute(_PICK, (stamp, batch_size))]
                if not seqs:
                    conn.execute("COMMIT")
                    break
                leased = conn.execute(
                    _LEASE.format(marks=", ".join("?" * len(seqs))),
                    (token, sql_time(now + lease_for), stamp, *seqs),
                ).fetchall()
                attempts = [
                    (seq, count + 1, f"payretry:{job_id}:{count + 1}", stamp)
                    for seq, job_id, count, _, _ in leased
                ]
                conn.executemany(_ATTEMPT, attempts)
                conn.execute("COMMIT")
                # The processor would be called here, once per attempt; every one succeeds.
                done = sql_time(datetime.now(UTC))
                outcomes = []
                jobs = []
                for seq, job_id, count, max_attempts, code in leased:
                    number = count + 1
                    reference = f"sim_{job_id[:12]}_{number}"
                    outcomes.append(
                        ("succeeded", done, reference, "succeeded", seq, number, seq, token)
                    )
                    jobs.append(
                        (
                            "succeeded",
                            number,
                            max_attempts,
                            f"attempt {number} succeeded (reference {reference})",
                            code,
                            done,
                            seq,
                            token,
                        )
                    )
                conn.execute("BEGIN IMMEDIATE")
                conn.executemany(_FINISH_ATTEMPT, outcomes)
                conn.executemany(_FINISH_JOB, jobs)
                conn.execute("COMMIT")
                processed += len(leased)
    finally:
        conn.close()
    return took, processed


# -- the run ------------------------------------------------------------------------------------


def cores() -> dict[str, int]:
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {"cpu_count": os.cpu_count() or 0, "usable": usable or os.cpu_count() or 0}


def pair(mine: Sequence[Took], base: Sequence[Took], jobs: int) -> dict[str, Any]:
    """Jobs/s of each side (the best of its runs) and their ratio, by wall clock; the same by
    CPU time, which the neighbours' load disturbs less."""
    wall_mine, wall_base = min(t.wall for t in mine), min(t.wall for t in base)
    cpu_mine, cpu_base = min(t.cpu for t in mine), min(t.cpu for t in base)
    return {
        "payretry_jobs_per_s": round(jobs / wall_mine, 1),
        "baseline_jobs_per_s": round(jobs / wall_base, 1),
        "ratio": round(wall_base / wall_mine, 3),
        "payretry_s": round(wall_mine, 3),
        "baseline_s": round(wall_base, 3),
        "payretry_cpu_s": round(cpu_mine, 3),
        "baseline_cpu_s": round(cpu_base, 3),
        "cpu_ratio": round(cpu_base / cpu_mine, 3),
        "runs": [
            {"payretry_s": round(m.wall, 3), "baseline_s": round(b.wall, 3)}
            for m, b in zip(mine, base, strict=True)
        ],
    }


def runner_batch_size() -> int:
    """The batch size Runner uses by default, so the baseline claims as many per batch."""
    import inspect

    from payretry.service.runner import Runner

    return int(inspect.signature(Runner.__init__).parameters["batch_size"].default)


def run(jobs: int, repeat: int, workdir: Path, say: Callable[[str], None]) -> dict[str, Any]:
    now = datetime.now(UTC) - QUEUE_BACKDATE
    rows = make_rows(jobs)
    say(f"{jobs:,} rows generated; working in {workdir}")

    # (a) bulk queue: baseline and payretry take turns, `repeat` runs each.
    template = workdir / "schema.db"
    create_schema(template)
    mine: list[Took] = []
    base: list[Took] = []
    queued = workdir / "queued.db"
    for round_ in range(repeat):
        target = workdir / f"queue-baseline-{round_}.db"
        checkpoint_copy(template, target)
        base.append(queue_baseline(target, rows, now))
        say(f"queue   baseline {jobs / base[-1].wall:>10,.0f} jobs/s")
        target = workdir / f"queue-payretry-{round_}.db"
        checkpoint_copy(template, target)
        mine.append(queue_payretry(target, rows, now))
        say(f"queue   payretry {jobs / mine[-1].wall:>10,.0f} jobs/s")
        if round_ == 0:
            checkpoint_copy(target, queued)
        for old in workdir.glob(f"queue-*-{round_}.db*"):
            old.unlink()
    queue_figures = pair(mine, base, jobs)
    del rows

    # (b) run-due over the jobs payretry queued, each side on its own copy, taking turns.
    mine, base = [], []
    batch_size = runner_batch_size()
    for round_ in range(repeat):
        target = workdir / f"run-baseline-{round_}.db"
        checkpoint_copy(queued, target)
        took, processed = run_due_baseline(target, batch_size)
        if processed != jobs or count_states(target) != {"succeeded": jobs}:
            raise SystemExit(f"baseline run-due processed {processed} of {jobs}")
        base.append(took)
        say(f"run-due baseline {jobs / took.wall:>10,.0f} jobs/s")
        target = workdir / f"run-payretry-{round_}.db"
        checkpoint_copy(queued, target)
        took, processed, used = run_due_payretry(target)
        if processed != jobs or count_states(target) != {"succeeded": jobs}:
            raise SystemExit(f"payretry run-due processed {processed} of {jobs}")
        if used != batch_size:
            raise SystemExit(f"payretry claimed {used} per batch, the baseline {batch_size}")
        mine.append(took)
        say(f"run-due payretry {jobs / took.wall:>10,.0f} jobs/s")
        for old in workdir.glob(f"run-*-{round_}.db*"):
            old.unlink()
    run_figures = pair(mine, base, jobs)
    run_figures["batch_size"] = batch_size

    return {
        "jobs": jobs,
        "repeat": repeat,
        "cores": cores(),
        "python": sys.version.split()[0],
        "sqlite": sqlite3.sqlite_version,
        "queue": queue_figures,
        "run_due": run_figures,
    }


def render(result: dict[str, Any]) -> str:
    q, r = result["queue"], result["run_due"]
    c = result["cores"]
    head = ("measure", "payretry jobs/s", "sqlite3 jobs/s", "ratio", "CPU-time ratio")
    table = [
        ("bulk queue", q),
        (f"run-due (batch {r['batch_size']})", r),
    ]
    lines = [
        "payretry beside its own statements in plain sqlite3 (in-process): "
        f"{result['jobs']:,} jobs, best of {result['repeat']} run(s) each; "
        f"{c['usable']} usable cores ({c['cpu_count']} on the machine); "
        f"Python {result['python']}, SQLite {result['sqlite']}",
        "",
        f"| {head[0]:<20} | {head[1]} | {head[2]} | {head[3]} | {head[4]} |",
        f"|{'-' * 22}|{'-' * 16}:|{'-' * 15}:|{'-' * 6}:|{'-' * 15}:|",
    ]
    for name, f in table:
        lines.append(
            f"| {name:<20} | {f['payretry_jobs_per_s']:>15,.0f} "
            f"| {f['baseline_jobs_per_s']:>14,.0f} | {f['ratio']:>5.2f} | {f['cpu_ratio']:>14.2f} |"
        )
    return "\n".join(lines)
