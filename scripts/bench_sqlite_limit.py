#!/usr/bin/env python3
"""The lean limit: a durable retry queue in plain sqlite3, no ORM, no validation beyond parsing.

What payretry's figures on SQLite are read against. It keeps the guarantees that make a retry
queue safe, in the fewest statements: a claim under a lease (one short BEGIN IMMEDIATE
transaction: the due rows in priority order through a partial index, marked running with a
lease token and expiry, RETURNING them, and one attempt row per job with its idempotency key,
written before the processor is called); then a fenced finish (the attempt's outcome and the
job's new state, each `WHERE ... lease_token = ?`, one transaction per batch). WAL,
synchronous=NORMAL, a 16 MiB page cache and a checkpoint every 10,000 pages, as payretry. A job
whose row says so fails once and is rescheduled a minute on; the processor itself takes no time.

Each command is one whole process, as `payretry` is in the benchmark:

    bench_sqlite_limit.py queue DB ROWS.jsonl   # parse every row, insert all in one transaction
    bench_sqlite_limit.py make-due DB           # (untimed) every scheduled job due now
    bench_sqlite_limit.py run-due DB [--batch N]  # claim / attempt / finish until nothing is due

`run-due` prints one JSON line: {"processed": N, "succeeded": S, "rescheduled": R}.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import time
import uuid
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
  id INTEGER PRIMARY KEY, txn TEXT NOT NULL, user_id TEXT NOT NULL,
  amount_minor INTEGER NOT NULL, currency TEXT NOT NULL, error_code TEXT NOT NULL,
  decline_code TEXT, meta TEXT, state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
  max_attempts INTEGER NOT NULL, next_retry_at REAL, priority INTEGER NOT NULL,
  lease_token TEXT, lease_until REAL, fail_first INTEGER NOT NULL DEFAULT 0,
  created_at REAL NOT NULL, updated_at REAL NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS jobs_active_txn ON jobs (txn)
  WHERE state IN ('scheduled', 'running');
CREATE INDEX IF NOT EXISTS jobs_due ON jobs (priority DESC, next_retry_at, id)
  WHERE state = 'scheduled';
CREATE TABLE IF NOT EXISTS attempts (
  id INTEGER PRIMARY KEY, job_id INTEGER NOT NULL REFERENCES jobs (id),
  number INTEGER NOT NULL, idem_key TEXT NOT NULL UNIQUE, outcome TEXT NOT NULL,
  started_at REAL NOT NULL, finished_at REAL, error_code TEXT);
CREATE UNIQUE INDEX IF NOT EXISTS attempts_job_number ON attempts (job_id, number);
"""
EXPONENTS = {"JPY": 0, "KWD": 3}
# First delay (s) and attempts per code, the lean stand-in for a policy table.
FIRST = {"network_error": (0, 3), "insufficient_funds": (86400, 2), "do_not_honor": (86400, 2)}
RETRY_DELAY = 60.0
LEASE = 300.0


def connect(path: str) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None, timeout=30)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = NORMAL")
    # payretry's page cache and checkpoint interval (payretry/store/engine.py), so the two
    # differ in their statements, not in their settings.
    db.execute("PRAGMA cache_size = -16384")
    db.execute("PRAGMA wal_autocheckpoint = 10000")
    return db


def minor(amount: str, currency: str) -> int:
    exponent = EXPONENTS.get(currency, 2)
    whole, _, frac = amount.partition(".")
    return int(whole) * 10**exponent + (int(frac.ljust(exponent, "0")) if frac else 0)


def queue(path: str, rows_file: str, in_claim_order: bool = False) -> int:
    """Every row of the file, one transaction. `in_claim_order`: priorities that fall with the
    row number, so the claim walks the table in the order it was written (the shape of
    ../shared/bench/sqlite_limit.py's synthetic rows) instead of by amount, scattered."""
    db = connect(path)
    db.executescript(SCHEMA)
    now = time.time()
    params = []
    with open(rows_file, encoding="utf-8") as rows:
        for index, line in enumerate(rows):
            row = json.loads(line)
            code = row.get("decline_code") or row["error_code"]
            delay, max_attempts = FIRST.get(code, (60, 3))
            amount = minor(row["amount"], row["currency"])
            meta = row.get("metadata") or {}
            params.append(
                (
                    row["transaction_id"],
                    row["user_id"],
                    amount,
                    row["currency"],
                    row["error_code"],
                    row.get("decline_code"),
                    json.dumps(meta),
                    max_attempts,
                    now + delay,
                    -index if in_claim_order else amount,
                    1 if "simulate" in meta else 0,
                    now,
                    now,
                )
            )
    db.execute("BEGIN IMMEDIATE")
    db.executemany(
        "INSERT INTO jobs (txn, user_id, amount_minor, currency, error_code, decline_code, meta,"
        " state, max_attempts, next_retry_at, priority, fail_first, created_at, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, 'scheduled', ?, ?, ?, ?, ?, ?)",
        params,
    )
    db.execute("COMMIT")
    db.close()
    return len(params)


def make_due(path: str) -> None:
    """Bench-side, untimed: every scheduled job due now (as payretry's side is made due)."""
    db = connect(path)
    db.execute("UPDATE jobs SET next_retry_at = created_at WHERE state = 'scheduled'")
    db.close()


def run_due(path: str, batch: int) -> dict[str, int]:
    db = connect(path)
    token = uuid.uuid4().hex
    counts = {"processed": 0, "succeeded": 0, "rescheduled": 0}
    while True:
        now = time.time()
        db.execute("BEGIN IMMEDIATE")
        claimed = db.execute(
            "UPDATE jobs SET state = 'running', lease_token = ?, lease_until = ?, updated_at = ?"
            " WHERE id IN (SELECT id FROM jobs WHERE state = 'scheduled' AND next_retry_at <= ?"
            " ORDER BY priority DESC, next_retry_at, id LIMIT ?)"
            " RETURNING id, attempts, max_attempts, fail_first",
            (token, now + LEASE, now, now, batch),
        ).fetchall()
        db.executemany(
            "INSERT INTO attempts (job_id, number, idem_key, outcome, started_at)"
            " VALUES (?, ?, ?, 'pending', ?)",
            [(j, n + 1, f"lean:{j}:{n + 1}", now) for j, n, _, _ in claimed],
        )
        db.execute("COMMIT")
        if not claimed:
            break
        # The processor is called here, once per claimed job; it takes no time.
        done = time.time()
        outcomes, finished, retried = [], [], []
        for job, count, _max, fail_first in claimed:
            number = count + 1
            if fail_first and number == 1:
                outcomes.append(("failed", done, "processing_error", job, number))
                retried.append((number, done + RETRY_DELAY, done, job, token))
            else:
                outcomes.append(("succeeded", done, None, job, number))
                finished.append((number, done, job, token))
        db.execute("BEGIN IMMEDIATE")
        db.executemany(
            "UPDATE attempts SET outcome = ?, finished_at = ?, error_code = ?"
            " WHERE job_id = ? AND number = ?",
            outcomes,
        )
        db.executemany(
            "UPDATE jobs SET state = 'succeeded', attempts = ?, lease_token = NULL,"
            " lease_until = NULL, next_retry_at = NULL, updated_at = ?"
            " WHERE id = ? AND lease_token = ?",
            finished,
        )
        db.executemany(
            "UPDATE jobs SET state = 'scheduled', attempts = ?, next_retry_at = ?,"
            " lease_token = NULL, lease_until = NULL, updated_at = ?"
            " WHERE id = ? AND lease_token = ?",
            retried,
        )
        db.execute("COMMIT")
        counts["processed"] += len(claimed)
        counts["succeeded"] += len(finished)
        counts["rescheduled"] += len(retried)
    db.close()
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    sub = parser.add_subparsers(dest="command", required=True)
    q = sub.add_parser("queue", help="insert every row of a JSON Lines file, one transaction")
    q.add_argument("db", type=Path)
    q.add_argument("rows", type=Path)
    q.add_argument(
        "--in-claim-order",
        action="store_true",
        help="priority falls with the row number (rows on disk in the order they are claimed)",
    )
    d = sub.add_parser("make-due", help="every scheduled job due now")
    d.add_argument("db", type=Path)
    r = sub.add_parser("run-due", help="claim, attempt and finish until nothing is due")
    r.add_argument("db", type=Path)
    r.add_argument("--batch", type=int, default=200, help="jobs per claim (200, as payretry)")
    args = parser.parse_args(argv)
    if args.command == "queue":
        print(json.dumps({"queued": queue(str(args.db), str(args.rows), args.in_claim_order)}))
    elif args.command == "make-due":
        make_due(str(args.db))
    else:
        print(json.dumps(run_due(str(args.db), args.batch)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
