"""PostgreSQL section of scripts/bench.py: bulk queue and run-due with 1, 2 and 4 worker
processes, beside a plain psycopg program doing the same SQL (insert; the one-statement claim
with FOR UPDATE SKIP LOCKED + attempt rows; the fenced finish), in schemas of their own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"

_PICK_AND_LEASE = """
WITH due AS (
  SELECT seq FROM retry_jobs WHERE state = 'scheduled' AND next_retry_at <= %(now)s
  ORDER BY priority DESC, next_retry_at, seq LIMIT %(limit)s FOR UPDATE SKIP LOCKED
)
UPDATE retry_jobs SET state = 'running', lease_token = %(token)s,
  lease_expires_at = %(expires)s, updated_at = %(now)s
WHERE seq IN (SELECT seq FROM due)
RETURNING seq, id, attempt_count, max_attempts, error_code
"""
_ABANDON = (
    "UPDATE retry_jobs SET state = 'abandoned', reason = 'window closed', next_retry_at = NULL,"
    " updated_at = %(now)s WHERE state = 'scheduled' AND expires_at <= %(now)s"
)
_ATTEMPT = (
    "INSERT INTO retry_attempts (job_seq, number, idempotency_key, outcome, started_at)"
    " VALUES (%s, %s, %s, 'pending', %s) ON CONFLICT (job_seq, number) DO NOTHING"
)
_FINISH_ATTEMPT = (
    "UPDATE retry_attempts SET outcome = 'succeeded', finished_at = %s, reference = %s,"
    " decision = 'succeeded' WHERE job_seq = %s AND number = %s AND EXISTS (SELECT 1 FROM"
    " retry_jobs WHERE seq = %s AND lease_token = %s AND state = 'running')"
)
_FINISH_JOB = (
    "UPDATE retry_jobs SET state = 'succeeded', attempt_count = %s, max_attempts = %s,"
    " next_retry_at = NULL, reason = %s, policy_code = %s, lease_token = NULL,"
    " lease_expires_at = NULL, updated_at = %s WHERE seq = %s AND lease_token = %s"
    " AND state = 'running'"
)
_RESET = [
    "DELETE FROM retry_attempts",
    "UPDATE retry_jobs SET state = 'scheduled', attempt_count = 0, lease_token = NULL,"
    " lease_expires_at = NULL, next_retry_at = created_at",
]


def libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def scoped(url: str, schema: str) -> str:
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}options=-csearch_path%3D{schema}"


def admin(url: str, *statements: str) -> None:
    import psycopg

    with psycopg.connect(libpq(url), autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)  # type: ignore[arg-type,unused-ignore]


def queue_payretry(url: str, rows: Sequence[dict[str, Any]], now: datetime) -> float:
    from payretry.domain.policy import RetryPolicy
    from payretry.service.intake import new_job
    from payretry.service.operations import Operations
    from payretry.store.sql import open_store

    store = open_store(url)
    try:
        start = time.perf_counter()
        requests = [(n, new_job(row, now=now)) for n, row in enumerate(rows, 1)]
        Operations(store, RetryPolicy.standard()).queue_many(requests, now)
        return time.perf_counter() - start
    finally:
        store.close()


def queue_baseline(url: str, rows: Sequence[dict[str, Any]], now: datetime) -> float:
    """The same rows, the same columns, one transaction, psycopg's executemany."""
    import psycopg
    from psycopg.types.json import Jsonb

    from payretry.store.sql import open_store

    open_store(url).close()  # the same schema, built by payretry's migrations
    start = time.perf_counter()
    values = []
    for row in rows:
        exponent = {"JPY": 0, "KWD": 3}.get(row["currency"], 2)
        minor = int(round(float(row["amount"]) * 10**exponent))
        values.append(
            (
                uuid.uuid4().hex,
                row["transaction_id"],
                row["user_id"],
                minor,
                row["currency"],
                row["error_code"],
                row.get("decline_code"),
                "scheduled",
                0,
                3,
                now,
                now,
                now,
                minor,
                Jsonb({}),
                "queued",
            )
        )
    with psycopg.connect(libpq(url)) as conn:
        conn.cursor().executemany(
            "INSERT INTO retry_jobs (id, transaction_id, user_id, amount_minor, currency,"
            " error_code, decline_code, state, attempt_count, max_attempts, next_retry_at,"
            " created_at, updated_at, priority, meta, reason)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            values,
        )
    return time.perf_counter() - start


def worker_payretry(url: str, batch: int) -> int:
    from payretry.clock import utcnow
    from payretry.domain.policy import RetryPolicy
    from payretry.processors.simulated import SimulatedProcessor
    from payretry.service.runner import Runner
    from payretry.store.sql import open_store

    store = open_store(url)
    try:
        runner = Runner(
            store,
            RetryPolicy.standard(),
            SimulatedProcessor(success_rate=1.0),
            clock=utcnow,
            batch_size=batch,
        )
        return runner.run_due().processed
    finally:
        store.close()


def worker_baseline(url: str, batch: int) -> int:
    import psycopg

    processed = 0
    lease = timedelta(minutes=5)
    with psycopg.connect(libpq(url)) as conn:
        while True:
            now = datetime.now(UTC)
            token = uuid.uuid4().hex
            with conn.transaction():
                conn.execute(_ABANDON, {"now": now})
            with conn.transaction():
                leased = conn.execute(
                    _PICK_AND_LEASE,
                    {"now": now, "limit": batch, "token": token, "expires": now + lease},
                ).fetchall()
                if not leased:
                    break
                conn.cursor().executemany(
                    _ATTEMPT,
                    [(seq, n + 1, f"payretry:{jid}:{n + 1}", now) for seq, jid, n, _, _ in leased],
                )
            done = datetime.now(UTC)
            with conn.transaction():
                cur = conn.cursor()
                cur.executemany(
                    _FINISH_ATTEMPT,
                    [
                        (done, f"sim_{jid[:12]}_{n + 1}", seq, n + 1, seq, token)
                        for seq, jid, n, _, _ in leased
                    ],
                )
                cur.executemany(
                    _FINISH_JOB,
                    [
                        (n + 1, m, f"attempt {n + 1} succeeded", code, done, seq, token)
                        for seq, _, n, m, code in leased
                    ],
                )
            processed += len(leased)
    return processed


def run_workers(side: str, url: str, workers: int, batch: int) -> tuple[float, int]:
    """Start `workers` processes at once; (wall seconds until the last ends, jobs processed)."""
    start = time.perf_counter()
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, "--worker", side, url, str(batch)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(workers)
    ]
    total = 0
    for proc in procs:
        out, _ = proc.communicate()
        if proc.returncode:
            raise RuntimeError(f"{side} worker failed")
        total += int(out.strip() or 0)
    return time.perf_counter() - start, total


def reset(url: str) -> None:
    import psycopg

    with psycopg.connect(libpq(url), autocommit=True) as conn:
        for statement in _RESET:
            conn.execute(statement)  # type: ignore[arg-type,unused-ignore]
        conn.execute("VACUUM ANALYZE retry_jobs")
        conn.execute("VACUUM ANALYZE retry_attempts")


def run(
    rows: Sequence[dict[str, Any]],
    now: datetime,
    batch: int,
    workers: Sequence[int] = (1, 2, 4),
    url: str | None = None,
) -> dict[str, Any]:
    base_url = url or os.environ.get("PAYRETRY_BENCH_POSTGRES_URL") or DEFAULT_URL
    tag = uuid.uuid4().hex[:8]
    mine, theirs = f"bench_payretry_{tag}", f"bench_baseline_{tag}"
    admin(base_url, f'CREATE SCHEMA "{mine}"', f'CREATE SCHEMA "{theirs}"')
    try:
        url_mine, url_theirs = scoped(base_url, mine), scoped(base_url, theirs)
        q_mine = queue_payretry(url_mine, rows, now)
        q_theirs = queue_baseline(url_theirs, rows, now)
        n = len(rows)
        result: dict[str, Any] = {
            "jobs": n,
            "queue": {
                "payretry_jobs_s": n / q_mine,
                "baseline_jobs_s": n / q_theirs,
                "ratio": q_theirs / q_mine,
            },
            "run_due": [],
        }
        for count in workers:
            reset(url_mine)
            reset(url_theirs)
            t_mine, p_mine = run_workers("payretry", url_mine, count, batch)
            t_theirs, p_theirs = run_workers("baseline", url_theirs, count, batch)
            if p_mine != n or p_theirs != n:
                raise RuntimeError(f"processed {p_mine} and {p_theirs} of {n}")
            result["run_due"].append(
                {
                    "workers": count,
                    "payretry_jobs_s": n / t_mine,
                    "baseline_jobs_s": n / t_theirs,
                    "ratio": t_theirs / t_mine,
                }
            )
        return result
    finally:
        admin(base_url, f'DROP SCHEMA "{mine}" CASCADE', f'DROP SCHEMA "{theirs}" CASCADE')


def render(result: dict[str, Any], cores: int) -> str:
    q = result["queue"]
    lines = [
        f"PostgreSQL ({result['jobs']:,} jobs; {cores} cores shared by the workers and the server)",
        f"  bulk queue          payretry {q['payretry_jobs_s']:>9,.0f} jobs/s   "
        f"psycopg {q['baseline_jobs_s']:>9,.0f} jobs/s   ratio {q['ratio']:.2f}",
    ]
    for r in result["run_due"]:
        lines.append(
            f"  run-due, {r['workers']} worker(s) payretry {r['payretry_jobs_s']:>9,.0f} jobs/s   "
            f"psycopg {r['baseline_jobs_s']:>9,.0f} jobs/s   ratio {r['ratio']:.2f}"
        )
    return "\n".join(lines)


if __name__ == "__main__" and len(sys.argv) == 5 and sys.argv[1] == "--worker":
    _, _, which, target, size = sys.argv
    work = worker_payretry if which == "payretry" else worker_baseline
    print(json.dumps(work(target, int(size))))
