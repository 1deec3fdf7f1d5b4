"""The HTTP API's throughput: GET and POST /api/payments/retry/{id} with 16 concurrent clients,
each beside a bare FastAPI route doing the same single SQL statement, in the same run.

The server runs in one process (uvicorn, as `payretry api` runs it), the load generator in
this one (asyncio + httpx), on loopback. Read the ratios: the machine is shared.

    .venv/bin/python scripts/bench_api.py [--requests 3000] [--clients 16] [--json]

Importable as a section: `run(args) -> list[dict]` (args: requests, clients).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SECRET = "bench-secret"
PRELOADED = 500


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve(port: int, url: str, token_file: str) -> None:
    """The server process: the payretry app plus the bare baseline routes, on one engine."""
    sys.path.insert(0, str(ROOT))
    from fastapi import FastAPI
    from sqlalchemy import text

    from payretry.api.server import ApiServer
    from payretry.config import load_settings
    from payretry.domain.access import Role
    from payretry.service.intake import new_job
    from payretry.wiring import Wiring

    settings = load_settings(
        env={"PAYRETRY_DATABASE_URL": url, "PAYRETRY_HTTP_TOKEN_SECRET": SECRET}
    )
    wiring = Wiring(settings)
    token, _ = wiring.tokens().create(Role.OPERATOR, "bench")
    now = wiring.clock()
    rows = [
        (
            n,
            new_job(
                {
                    "transaction_id": f"txn_{n}",
                    "user_id": f"usr_{n % 20}",
                    "amount": "10.00",
                    "currency": "USD",
                    "error_code": "processing_error",
                },
                now=now,
            ),
        )
        for n in range(PRELOADED)
    ]
    wiring.operations().queue_many(rows, now)
    engine = wiring.store.engine
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE IF NOT EXISTS bench_rows (id VARCHAR(64) PRIMARY KEY)"))

    server = ApiServer(wiring, "127.0.0.1", port)
    app: FastAPI = server.app

    @app.get("/bench/baseline/{transaction_id}")
    def baseline_get(transaction_id: str) -> dict[str, Any]:
        with engine.connect() as conn:
            row = conn.execute(
                text("SELECT * FROM retry_jobs WHERE transaction_id = :t LIMIT 1"),
                {"t": transaction_id},
            ).first()
        return dict(row._mapping) if row is not None else {}

    @app.post("/bench/baseline/{transaction_id}", status_code=201)
    def baseline_post(transaction_id: str) -> dict[str, str]:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO bench_rows (id) VALUES (:t)"), {"t": transaction_id})
        return {"id": transaction_id}

    Path(token_file).write_text(token)
    server.start()
    try:
        while server.thread.is_alive():
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


async def _load(
    base: str, token: str, method: str, paths: list[str], clients: int, body: Any
) -> tuple[float, float, int]:
    import httpx

    latencies: list[float] = []
    errors = 0
    queue: asyncio.Queue[str] = asyncio.Queue()
    for path in paths:
        queue.put_nowait(path)
    headers = {"Authorization": f"Bearer {token}"}
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits) as client:

        async def worker() -> None:
            nonlocal errors
            while not queue.empty():
                path = queue.get_nowait()
                started = time.perf_counter()
                response = await client.request(method, path, json=body)
                latencies.append(time.perf_counter() - started)
                if response.status_code >= 300:
                    errors += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    return len(paths) / elapsed, p99 * 1000, errors


BODY = {
    "error": {"code": "processing_error", "message": "timeout"},
    "metadata": {"userId": "usr_bench", "amount": "19.99", "currency": "USD"},
}


def run(args: Any) -> list[dict[str, Any]]:
    requests = int(getattr(args, "requests", 3000))
    clients = int(getattr(args, "clients", 16))
    work = Path(tempfile.mkdtemp(prefix="payretry-bench-api-"))
    url = getattr(args, "db", None) or f"sqlite:///{work / 'bench.db'}"
    port = _free_port()
    token_file = work / "token"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYRETRY_")}
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(port), url, str(token_file)],
        env=env,
        cwd=ROOT,
    )
    try:
        deadline = time.monotonic() + 60
        while not token_file.exists() or not _answers(port):
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the bench server did not start")
            time.sleep(0.1)
        token = token_file.read_text()
        base = f"http://127.0.0.1:{port}"
        rows = []
        for method in ("GET", "POST"):
            results = {}
            for name, prefix in (
                ("payretry", "/api/payments/retry/"),
                ("baseline", "/bench/baseline/"),
            ):
                if method == "GET":
                    paths = [f"{prefix}txn_{n % PRELOADED}" for n in range(requests)]
                else:
                    run_id = uuid.uuid4().hex[:8]
                    paths = [f"{prefix}new_{run_id}_{n}" for n in range(requests)]
                if method == "GET":  # warm the connections and the caches
                    asyncio.run(_load(base, token, method, paths[:200], clients, None))
                results[name] = asyncio.run(
                    _load(base, token, method, paths, clients, BODY if method == "POST" else None)
                )
            (p_rps, p_p99, p_err), (b_rps, b_p99, b_err) = results["payretry"], results["baseline"]
            rows.append(
                {
                    "section": "api",
                    "measure": f"{method} /api/payments/retry/{{id}}",
                    "clients": clients,
                    "requests": requests,
                    "payretry_rps": round(p_rps, 1),
                    "baseline_rps": round(b_rps, 1),
                    "ratio": round(p_rps / b_rps, 3),
                    "payretry_p99_ms": round(p_p99, 1),
                    "baseline_p99_ms": round(b_p99, 1),
                    "errors": p_err + b_err,
                }
            )
        return rows
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        serve(int(sys.argv[2]), sys.argv[3], sys.argv[4])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000, help="per measure and side")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--db", help="database URL (default: a fresh SQLite file)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = run(args)
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    head = ("measure", "payretry/s", "baseline/s", "ratio", "p99 ms", "base p99")
    print(f"{head[0]:34} {head[1]:>11} {head[2]:>11} {head[3]:>6} {head[4]:>8} {head[5]:>9}")
    for r in rows:
        print(
            f"{r['measure']:34} {r['payretry_rps']:>11} {r['baseline_rps']:>11} {r['ratio']:>6} "
            f"{r['payretry_p99_ms']:>8} {r['baseline_p99_ms']:>9}"
        )


if __name__ == "__main__":
    main()
