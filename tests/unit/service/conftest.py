"""The service on its in-memory twins: MemoryStore, MemoryQueue and a ManualClock from
payretry.testing, and a processor written here, so each test runs in milliseconds."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from payretry.domain.models import Job, NewJob
from payretry.domain.policy import RetryPolicy
from payretry.domain.results import AttemptRequest, AttemptResult
from payretry.service.intake import new_job
from payretry.service.operations import Operations
from payretry.testing import ManualClock, MemoryStore

T0 = datetime(2026, 11, 22, 12, 0, 0, tzinfo=UTC)
POLICY = RetryPolicy.standard()
LEASE = timedelta(minutes=5)

Answer = AttemptResult | Exception


class Scripted:
    """A processor whose answers the test writes: for each transaction, the answers of its
    attempts in order (an AttemptResult, or an exception to raise), the last one repeating;
    a success where none is written. `during(request)` runs inside each attempt."""

    name = "scripted"
    needs_history = False

    def __init__(
        self,
        answers: Mapping[str, Iterable[Answer]] | None = None,
        *,
        rate: float | None = None,
        during: Callable[[AttemptRequest], None] | None = None,
    ) -> None:
        self.answers = {txn: list(found) for txn, found in (answers or {}).items()}
        self.rate = rate
        self.during = during
        self.requests: list[AttemptRequest] = []
        self.started: list[float] = []  # time.monotonic() at each attempt
        self.closed = False
        self._lock = threading.Lock()

    def attempt(self, request: AttemptRequest) -> AttemptResult:
        txn = request.job.transaction_id
        with self._lock:
            self.requests.append(request)
            self.started.append(time.monotonic())
            planned = self.answers.get(txn) or []
            answer = planned.pop(0) if len(planned) > 1 else (planned[0] if planned else None)
        if self.during is not None:
            self.during(request)
        if isinstance(answer, Exception):
            raise answer
        return answer or AttemptResult.success(f"ref-{request.idempotency_key}")

    def close(self) -> None:
        self.closed = True

    @property
    def transactions(self) -> list[str]:
        return [r.job.transaction_id for r in self.requests]

    @property
    def keys(self) -> list[str]:
        return [r.idempotency_key for r in self.requests]


def request(txn: str, *, now: datetime = T0, **fields: Any) -> NewJob:
    """What `payretry queue txn ...` asks for: 10.00 EUR after a network error (due at once)."""
    given = {
        "transaction_id": txn,
        "user_id": "usr_1",
        "amount": "10.00",
        "currency": "EUR",
        "error_code": "network_error",
        **fields,
    }
    return new_job(given, now=now)


def queue(store: MemoryStore, txn: str, *, now: datetime = T0, **fields: Any) -> Job:
    job, created = Operations(store, POLICY).queue(request(txn, now=now, **fields), now)
    assert created
    return job


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def store() -> MemoryStore:
    """The in-memory store (this directory's `store`: the SQLite one of tests/conftest.py is
    for the suites that test SQL)."""
    return MemoryStore()
