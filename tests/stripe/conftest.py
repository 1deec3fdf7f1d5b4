"""Fixtures for the Stripe suite: the emulator (a thread), localstripe (a process), an in-process
runner with a clock that can be moved forward, and jobs queued the way `payretry queue` does."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from payretry.config import Settings, load_settings
from payretry.domain.models import Job, NewJob, ProcessorRefs
from payretry.domain.money import Money
from payretry.processors.stripe import StripeProcessor
from payretry.service.operations import Operations
from payretry.store.sql import SqlStore
from payretry.wiring import Wiring
from tests.stripe.emulator import KEY, Emulator

ROOT = Path(__file__).resolve().parents[2]


class Clock:
    """Real time plus an offset the test moves forward (Stripe's servers keep real time)."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, **delta: float) -> None:
        self.offset += timedelta(**delta)


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    server = Emulator().start()
    yield server
    server.stop()


@pytest.fixture
def clock() -> Clock:
    return Clock()


def stripe_env(base: str, **extra: str) -> dict[str, str]:
    return {
        "STRIPE_API_KEY": KEY,
        "PAYRETRY_STRIPE_API_BASE": base,
        "PAYRETRY_STRIPE_MAX_NETWORK_RETRIES": "0",
        "PAYRETRY_STRIPE_CONNECT_TIMEOUT": "2s",
        "PAYRETRY_STRIPE_READ_TIMEOUT": "3s",
        "PAYRETRY_STRIPE_CHECKOUT_SUCCESS_URL": "https://shop.example/paid",
        "PAYRETRY_STRIPE_CHECKOUT_CANCEL_URL": "https://shop.example/cart",
        **extra,
    }


class Harness:
    """payretry's service over a real SQLite store, driving the Stripe processor."""

    def __init__(self, store: SqlStore, base: str, clock: Clock, **env: str) -> None:
        self.store = store
        self.clock = clock
        env = {"PAYRETRY_DATABASE_LOCK_TIMEOUT": "30s", **env}
        self.settings: Settings = load_settings(env=stripe_env(base, **env))
        self.wiring = Wiring(self.settings, clock=clock, store=store)
        self.policy = self.wiring.policy
        processor = self.wiring.processor("stripe")
        assert isinstance(processor, StripeProcessor)
        self.processor = processor
        self.runner = self.wiring.runner("stripe")

    def queue(
        self,
        transaction_id: str,
        *,
        error_code: str = "card_declined",
        decline_code: str | None = "insufficient_funds",
        customer: str | None = "cus_1",
        payment_method: str | None = "pm_card",
        payment_intent: str | None = None,
        checkout_session: str | None = None,
        window: timedelta | None = None,
        amount_minor: int = 4999,
        metadata: dict[str, str] | None = None,
        card_network: str | None = None,
        card_fingerprint: str | None = None,
    ) -> Job:
        request = NewJob(
            transaction_id=transaction_id,
            user_id="user_1",
            money=Money(amount_minor, "USD"),
            error_code=error_code,
            decline_code=decline_code,
            error_message=None,
            refs=ProcessorRefs(payment_intent, customer, payment_method, checkout_session),
            metadata=metadata or {"order": transaction_id},
            expires_at=self.clock() + window if window else None,
            priority=None,
            card_network=card_network,
            card_fingerprint=card_fingerprint,
        )
        operations = Operations(self.store, self.policy, ledger=self.store)
        job, _ = operations.queue(request, self.clock())
        return job

    def run(self) -> dict[str, Any]:
        results: list[Any] = []
        report = self.runner.run_due(on_result=results.append)
        return {**report.as_dict(), "results": [r.as_dict() for r in results]}

    def job(self, transaction_id: str) -> Job:
        job = self.store.find(transaction_id)
        assert job is not None
        return job


@pytest.fixture
def harness(store: SqlStore, emulator: Emulator, clock: Clock) -> Harness:
    return Harness(store, emulator.url, clock)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"localstripe exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"localstripe did not answer on port {port} within {timeout}s")


@pytest.fixture(scope="module")
def localstripe(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    pytest.importorskip("localstripe", reason="localstripe is a test extra")
    state = tmp_path_factory.mktemp("localstripe") / "state.pickle"
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.stripe.run_localstripe", str(port), str(state)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    try:
        wait_for_port(port, process)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
