#!/usr/bin/env python3
"""The peer queues of scripts/bench.py, each command one whole process (what the benchmark
times): huey on SQLite; pgqueuer and procrastinate on PostgreSQL. Every peer does the job of
payretry's side: the same rows (one task per row, the row as its payload), a processor that
takes no time, and 1 job in 10 (the rows with `simulate` metadata) failing on its first attempt
and rescheduled a minute on through the peer's own retry mechanism. payretry works the highest
amount first; huey and pgqueuer are given the same order through their priority (procrastinate
takes its jobs as they came, which favours it). Each peer runs with its
defaults apart from what the job needs (one consumer or worker; logs quiet).

    bench_peers.py huey-enqueue DB ROWS.jsonl       # one task per row (huey: a transaction each)
    bench_peers.py huey-process DB N                # one consumer thread until N tasks ran
    bench_peers.py pgqueuer-install DSN SCHEMA
    bench_peers.py pgqueuer-enqueue DSN SCHEMA APP ROWS.jsonl   # one batch enqueue
    bench_peers.py pgqueuer-process DSN SCHEMA APP N
    bench_peers.py procrastinate-install DSN SCHEMA
    bench_peers.py procrastinate-enqueue DSN SCHEMA APP ROWS.jsonl  # batch_defer
    bench_peers.py procrastinate-process DSN SCHEMA APP N

DSN is a libpq URL; SCHEMA the schema the peer's tables live in (set as search_path); APP the
connection's application_name, by which the benchmark finds the server backends to charge.
Each command prints one JSON line with what it did.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import logging
import sys
import threading
from datetime import timedelta
from typing import Any
from urllib.parse import quote

PEERS = {"huey": "huey", "pgqueuer": "pgqueuer", "procrastinate": "procrastinate"}
RETRY_DELAY = timedelta(minutes=1)


def installed(peer: str) -> bool:
    return importlib.util.find_spec(PEERS[peer]) is not None


def missing_message(peer: str) -> str:
    return f"{peer} is not installed: skipped (pip install -e '.[bench]' installs the peers)"


def read_rows(path: str) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as rows:
        return [json.loads(line) for line in rows]


def fails(row: dict[str, Any]) -> bool:
    return "simulate" in (row.get("metadata") or {})


def libpq_with(dsn: str, schema: str, app: str) -> str:
    sep = "&" if "?" in dsn else "?"
    return f"{dsn}{sep}application_name={app}&options={quote(f'-csearch_path={schema}')}"


# -- huey ---------------------------------------------------------------------------------------


def _huey(path: str) -> tuple[Any, Any]:
    """SqliteHuey as payretry runs SQLite: WAL with synchronous=NORMAL (huey's default leaves
    synchronous at FULL, an fsync per commit, several times slower on this disk)."""
    from huey import Huey
    from huey.storage import SqliteStorage

    class NormalSync(SqliteStorage):  # type: ignore[misc]
        def _create_connection(self) -> Any:
            conn = super()._create_connection()
            conn.execute("pragma synchronous=1")
            return conn

    huey = Huey("bench", storage_class=NormalSync, filename=path)

    @huey.task(retries=1, retry_delay=int(RETRY_DELAY.total_seconds()))
    def charge(row: dict[str, Any]) -> None:
        if fails(row):
            raise RuntimeError("processing_error")

    return huey, charge


def huey_enqueue(path: str, rows_file: str) -> dict[str, Any]:
    huey, charge = _huey(path)
    rows = read_rows(rows_file)
    for row in rows:
        # payretry works the highest amount first: huey is given the same order (its priority,
        # served by its (queue, priority desc, id) index), as pgqueuer is.
        charge(row, priority=_priority(row))
    return {"enqueued": len(rows), "pending": huey.pending_count()}


def huey_process(path: str, expected: int) -> dict[str, Any]:
    from huey import signals

    logging.getLogger("huey").setLevel(logging.CRITICAL)  # no traceback per failed task
    huey, _ = _huey(path)
    counts = {"complete": 0, "error": 0}
    done = threading.Event()
    guard = threading.Lock()

    @huey.signal(signals.SIGNAL_COMPLETE, signals.SIGNAL_ERROR)
    def ran(signal: str, task: Any, exc: Any = None) -> None:
        with guard:
            counts[signal] += 1
            if counts["complete"] + counts["error"] >= expected:
                done.set()

    consumer = huey.create_consumer(workers=1, worker_type="thread", periodic=False)
    consumer.start()
    done.wait()
    consumer.stop(graceful=True)
    return {
        "processed": counts["complete"] + counts["error"],
        "succeeded": counts["complete"],
        "rescheduled": huey.scheduled_count(),
    }


# -- pgqueuer -----------------------------------------------------------------------------------


async def _asyncpg(dsn: str, schema: str, app: str) -> Any:
    import asyncpg

    return await asyncpg.connect(
        dsn, server_settings={"application_name": app, "search_path": schema}
    )


def _pgqueuer_driver(conn: Any) -> Any:
    from pgqueuer.db import AsyncpgDriver

    return AsyncpgDriver(conn)


async def pgqueuer_install(dsn: str, schema: str) -> dict[str, Any]:
    from pgqueuer.queries import Queries

    conn = await _asyncpg(dsn, schema, "bench-setup")
    try:
        await Queries(_pgqueuer_driver(conn)).install()
    finally:
        await conn.close()
    return {"installed": schema}


async def pgqueuer_enqueue(dsn: str, schema: str, app: str, rows_file: str) -> dict[str, Any]:
    from pgqueuer.queries import Queries

    rows = read_rows(rows_file)
    conn = await _asyncpg(dsn, schema, app)
    try:
        queries = Queries(_pgqueuer_driver(conn))
        ids = await queries.enqueue(
            ["charge"] * len(rows),
            [json.dumps(row).encode() for row in rows],
            [_priority(row) for row in rows],
        )
    finally:
        await conn.close()
    return {"enqueued": len(ids)}


def _priority(row: dict[str, Any]) -> int:
    # pgqueuer's priority is a 32-bit integer; amounts in minor units fit.
    whole, _, frac = str(row["amount"]).partition(".")
    return int(whole + frac.ljust(2, "0")[:2]) % 2_000_000_000


async def pgqueuer_process(dsn: str, schema: str, app: str, expected: int) -> dict[str, Any]:
    from pgqueuer import QueueManager
    from pgqueuer.errors import RetryRequested
    from pgqueuer.queries import Queries

    logging.getLogger("pgqueuer").setLevel(logging.CRITICAL)
    conn = await _asyncpg(dsn, schema, app)
    qm = QueueManager(Queries(_pgqueuer_driver(conn)))
    counts = {"processed": 0, "rescheduled": 0}

    @qm.entrypoint("charge")
    async def charge(job: Any) -> None:
        counts["processed"] += 1
        if counts["processed"] >= expected:
            qm.shutdown.set()
        if fails(json.loads(job.payload)) and job.attempts == 0:
            counts["rescheduled"] += 1
            raise RetryRequested(delay=RETRY_DELAY, reason="processing_error")

    try:
        await qm.run()
    finally:
        await conn.close()
    return {**counts, "succeeded": counts["processed"] - counts["rescheduled"]}


# -- procrastinate ------------------------------------------------------------------------------


def _procrastinate(dsn: str, schema: str, app: str) -> tuple[Any, Any]:
    import procrastinate

    connector = procrastinate.PsycopgConnector(conninfo=libpq_with(dsn, schema, app))
    procrastinate_app = procrastinate.App(connector=connector)
    retry = procrastinate.RetryStrategy(max_attempts=1, wait=int(RETRY_DELAY.total_seconds()))

    @procrastinate_app.task(name="charge", retry=retry)
    async def charge(row: dict[str, Any]) -> None:
        if fails(row):
            raise RuntimeError("processing_error")

    return procrastinate_app, charge


async def procrastinate_install(dsn: str, schema: str) -> dict[str, Any]:
    app, _ = _procrastinate(dsn, schema, "bench-setup")
    async with app.open_async():
        await app.schema_manager.apply_schema_async()
    return {"installed": schema}


async def procrastinate_enqueue(dsn: str, schema: str, app: str, rows_file: str) -> dict[str, Any]:
    rows = read_rows(rows_file)
    papp, charge = _procrastinate(dsn, schema, app)
    async with papp.open_async():
        ids = await charge.batch_defer_async(*({"row": row} for row in rows))
    return {"enqueued": len(ids)}


async def procrastinate_process(dsn: str, schema: str, app: str, expected: int) -> dict[str, Any]:
    """One worker (concurrency 1) until it has run `expected` jobs, then stopped as a signal
    would stop it. (Its `wait=False` mode can stop before the queue is empty.)"""
    logging.getLogger("procrastinate").setLevel(logging.CRITICAL)
    papp, _ = _procrastinate(dsn, schema, app)
    ran = {"n": 0}
    enough = asyncio.Event()

    original = papp.tasks["charge"].func

    async def counted(row: dict[str, Any]) -> None:
        ran["n"] += 1
        if ran["n"] >= expected:
            enough.set()
        await original(row)

    papp.tasks["charge"].func = counted
    async with papp.open_async():
        worker = asyncio.create_task(
            papp.run_worker_async(concurrency=1, wait=True, install_signal_handlers=False)
        )
        await enough.wait()
        worker.cancel()
        try:
            await worker
        except asyncio.CancelledError:
            pass
        counts = await papp.connector.execute_query_all_async(
            "SELECT status::text AS status, count(*) AS n FROM procrastinate_jobs GROUP BY 1"
        )
    by_status = {row["status"]: row["n"] for row in counts}
    return {
        "processed": ran["n"],
        "succeeded": by_status.get("succeeded", 0),
        "rescheduled": by_status.get("todo", 0),
        "statuses": by_status,
    }


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__)
        return 2
    command, args = argv[0], argv[1:]
    result: dict[str, Any]
    if command == "huey-enqueue":
        result = huey_enqueue(args[0], args[1])
    elif command == "huey-process":
        result = huey_process(args[0], int(args[1]))
    elif command == "pgqueuer-install":
        result = asyncio.run(pgqueuer_install(args[0], args[1]))
    elif command == "pgqueuer-enqueue":
        result = asyncio.run(pgqueuer_enqueue(*args[:4]))
    elif command == "pgqueuer-process":
        result = asyncio.run(pgqueuer_process(args[0], args[1], args[2], int(args[3])))
    elif command == "procrastinate-install":
        result = asyncio.run(procrastinate_install(args[0], args[1]))
    elif command == "procrastinate-enqueue":
        result = asyncio.run(procrastinate_enqueue(*args[:4]))
    elif command == "procrastinate-process":
        result = asyncio.run(procrastinate_process(args[0], args[1], args[2], int(args[3])))
    else:
        print(f"unknown command {command!r}", file=sys.stderr)
        return 2
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
