"""Real processes: SIGTERM of `payretry serve --http-port` with requests in flight (they finish
or get 503; nothing half-written; exit 0), and two `payretry api` replicas on one PostgreSQL
database (one job per transaction, one stored response per Idempotency-Key)."""

from __future__ import annotations

import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

from payretry.clock import utcnow
from payretry.config import load_settings
from payretry.domain.access import Role
from payretry.store.sql import open_store
from payretry.wiring import Wiring
from tests.api.conftest import SECRET, SEED_BODY
from tests.daemon.helpers import cli_env, payretry, queue_jobs, wait_for
from tests.stripe.conftest import free_port

pytestmark = pytest.mark.slow


def admin_token(url: str) -> str:
    wiring = Wiring(
        load_settings(env={"PAYRETRY_DATABASE_URL": url, "PAYRETRY_HTTP_TOKEN_SECRET": SECRET})
    )
    try:
        text_, _ = wiring.tokens().create(Role.ADMIN, "test")
        return text_
    finally:
        wiring.close()


def start(args: list[str], env: dict[str, str], port: int) -> subprocess.Popen[str]:
    proc = payretry(*args, env=env)

    def ready() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"exited {proc.returncode}: {proc.communicate()[1]}")
        try:
            return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(ready, 30, "the API to answer")
    return proc


def stop(proc: subprocess.Popen[str], *, signalled: bool = False) -> tuple[int, str]:
    if proc.poll() is None and not signalled:
        proc.send_signal(signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate(timeout=10)
    return proc.returncode, err


def count(url: str, sql: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text(sql)).scalar_one())
    finally:
        engine.dispose()


def test_sigterm_of_serve_lets_requests_in_flight_finish(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    store = open_store(url)
    queue_jobs(store, 4, utcnow(), error_code="processing_error")  # due in a minute: not ticked
    store.close()
    token = admin_token(url)
    port = free_port()
    env = cli_env(
        url,
        tmp_path / "ledger.db",
        PAYRETRY_SIMULATED_LATENCY="2s",
        PAYRETRY_HTTP_TOKEN_SECRET=SECRET,
        PAYRETRY_RUNNER_GRACE_PERIOD="10s",
    )
    proc = start(["serve", "--interval", "1s", "--http-port", str(port)], env, port)
    base = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {token}"}

    def retry(n: int) -> int:
        try:
            return httpx.post(
                f"{base}/payments/retry/txn_{n:05d}", headers=headers, timeout=30
            ).status_code
        except httpx.TransportError:
            return -1  # refused: the server had stopped listening

    try:
        with ThreadPoolExecutor(4) as pool:
            in_flight = [pool.submit(retry, n) for n in (1, 2, 3)]
            time.sleep(0.8)  # the three are at the processor
            proc.send_signal(signal.SIGTERM)
            time.sleep(0.3)
            late = pool.submit(retry, 4)
            codes = [f.result() for f in in_flight]
            late_code = late.result()
    finally:
        code, err = stop(proc, signalled=True)
    assert code == 0, err
    assert codes == [200, 200, 200], codes  # in flight: finished
    assert late_code in (503, -1)  # after the signal: refused, never half-done
    assert count(url, "SELECT count(*) FROM retry_jobs WHERE state = 'running'") == 0
    assert count(url, "SELECT count(*) FROM retry_attempts WHERE outcome = 'pending'") == 0
    assert count(url, "SELECT count(*) FROM retry_attempts") == 3
    assert count(url, "SELECT count(*) FROM api_idempotency") == 0


@pytest.mark.postgres
def test_two_api_replicas_on_one_postgresql_database(pg_url: str, tmp_path: Path) -> None:
    open_store(pg_url).close()
    token = admin_token(pg_url)
    ports = [free_port(), free_port()]
    env = cli_env(pg_url, tmp_path / "ledger.db", PAYRETRY_HTTP_TOKEN_SECRET=SECRET)
    procs = [start(["api", "--http-port", str(p)], env, p) for p in ports]
    clients = [
        httpx.Client(base_url=f"http://127.0.0.1:{p}", headers={"Authorization": f"Bearer {token}"})
        for p in ports
    ]
    try:
        for round_ in range(5):  # one transaction sent to both at once: one job
            txn = f"txn_both_{round_}"

            def post(client: httpx.Client, txn: str = txn) -> Any:
                return client.post(f"/api/payments/retry/{txn}", json=SEED_BODY)

            with ThreadPoolExecutor(2) as pool:
                answers = list(pool.map(post, clients))
            assert sorted(a.status_code for a in answers) == [200, 201], [a.text for a in answers]
            assert len({a.json()["job_id"] for a in answers}) == 1
        for round_ in range(5):  # one Idempotency-Key sent to both at once
            key = {"Idempotency-Key": f"k-{round_}"}
            txn = f"txn_key_{round_}"

            def keyed(client: httpx.Client, txn: str = txn, key: Any = key) -> Any:
                return client.post(f"/api/payments/retry/{txn}", json=SEED_BODY, headers=key)

            with ThreadPoolExecutor(2) as pool:
                answers = list(pool.map(keyed, clients))
            codes = sorted(a.status_code for a in answers)
            assert codes in ([201, 201], [201, 409]), [a.text for a in answers]
            if codes == [201, 201]:  # the second came after the first finished: a replay
                assert any(a.headers.get("idempotent-replayed") for a in answers)
                assert answers[0].content == answers[1].content
        assert count(pg_url, "SELECT count(*) FROM retry_jobs") == 10
        assert count(pg_url, "SELECT count(*) FROM api_idempotency WHERE status IS NOT NULL") == 5
    finally:
        for client in clients:
            client.close()
        results = [stop(p) for p in procs]
    assert [r[0] for r in results] == [0, 0], results
