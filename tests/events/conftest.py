"""Shared pieces of the event tests: a real HTTP receiver on loopback, a settable clock, jobs
queued and run through the real service on a real store."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
from collections import Counter, deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from payretry.config import Settings, load_settings
from payretry.domain.events import Event
from payretry.domain.models import Job
from payretry.domain.outbox import Cursor, EventStore
from payretry.domain.outcomes import RunReport
from payretry.domain.policy import RetryPolicy
from payretry.domain.ports import Store
from payretry.processors.simulated import SimulatedProcessor
from payretry.service.intake import new_job
from payretry.service.operations import Operations
from payretry.service.runner import Runner
from tests.cli.conftest import (  # noqa: F401  (fixtures)
    _build_the_command_once,
    db_path,
    invoke,
)
from tests.cli.conftest import clock as frozen_clock  # noqa: F401  (freezegun's, at T0)
from tests.contract.conftest import contract_store, postgres_store  # noqa: F401  (fixtures)

T0 = datetime(2026, 11, 22, 12, 0, 0, tzinfo=UTC)
POLICY = RetryPolicy.standard()


@pytest.fixture(autouse=True)
def _loopback_without_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    """Requests to the test's own servers never go through a proxy from the environment."""
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


class Clock:
    """A clock the test moves: `clock()` is now, `clock.at(+5m)` moves it."""

    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def at(self, offset: timedelta) -> datetime:
        self.now = T0 + offset
        return self.now


def queue(store: Store, txn: str, *, now: datetime = T0, **fields: Any) -> Job:
    """Queue one job through the service, as `payretry queue` does."""
    given = {
        "transaction_id": txn,
        "user_id": "usr_1",
        "amount": "12.50",
        "currency": "EUR",
        "error_code": "processing_error",
        **fields,
    }
    job, created = Operations(store, POLICY).queue(new_job(given, now=now), now)
    assert created
    return job


def run_due(store: Store, clock: Clock) -> RunReport:
    """run-due with the simulated processor; outcomes from each job's `simulate` metadata."""
    return Runner(store, POLICY, SimulatedProcessor(success_rate=1.0), clock=clock).run_due()


def all_events(store: EventStore) -> list[Event]:
    """Every event in the outbox, oldest first (as stored, not as delivery may take them)."""
    entries = store.entries_after(Cursor(), 100_000, settled=False)
    return [e for entry in entries for e in entry.events()]


def settings(**env: str) -> Settings:
    """Settings from PAYRETRY_* variables only (`events_file="x"` -> PAYRETRY_EVENTS_FILE)."""
    return load_settings(env={f"PAYRETRY_{k.upper()}": v for k, v in env.items()})


# -- a real HTTP receiver ----------------------------------------------------------------------


@dataclass
class Received:
    path: str
    headers: Mapping[str, str]
    body: bytes
    status: int

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """An HTTP server on 127.0.0.1, in a thread, that records every request. `answers` are the
    statuses to give, in order (then 200). `accepted` counts each event id the receiver took
    (a 2xx answer): a receiver that drops duplicates keeps `set(accepted)`."""

    secret: str = "whsec_test_0123456789"
    answers: deque[int] = field(default_factory=deque)
    requests: list[Received] = field(default_factory=list)
    port: int = 0
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver._lock:
                    status = receiver.answers.popleft() if receiver.answers else 200
                    receiver.requests.append(
                        Received(self.path, dict(self.headers.items()), body, status)
                    )
                answer = b"{}"
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        server = self._server
        threading.Thread(target=lambda: server.serve_forever(0.02), daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def verified(self, request: Received, tolerance: float = 300.0) -> bool:
        """The receiver's check of Payretry-Signature: t=<unix>,v1=<hex HMAC-SHA256>."""
        parts = dict(p.split("=", 1) for p in request.headers["Payretry-Signature"].split(","))
        signed = parts["t"].encode() + b"." + request.body
        mac = hmac.new(self.secret.encode(), signed, hashlib.sha256).hexdigest()
        fresh = abs(datetime.now(UTC).timestamp() - int(parts["t"])) <= tolerance
        return fresh and hmac.compare_digest(mac, parts["v1"])

    @property
    def accepted(self) -> Counter[str]:
        found: Counter[str] = Counter()
        for request in self.requests:
            if 200 <= request.status < 300:
                found.update(e["id"] for e in request.json()["events"])
        return found


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver().start()
    try:
        yield server
    finally:
        server.stop()


# -- a DogStatsD peer: a UDP socket on loopback ---------------------------------------------


@pytest.fixture
def udp() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(2.0)
    try:
        yield sock
    finally:
        sock.close()


def datagrams(sock: socket.socket) -> list[str]:
    found = []
    sock.settimeout(0.3)
    try:
        while True:
            found.extend(sock.recv(65535).decode().splitlines())
    except TimeoutError:
        return found


def parse_datagram(line: str) -> tuple[str, str, str, frozenset[str]]:
    """`name:value|type|#tag,tag` (DogStatsD's format)."""
    head, kind, *rest = line.split("|")
    name, value = head.split(":", 1)
    tags = next((part[1:].split(",") for part in rest if part.startswith("#")), [])
    return name, value, kind, frozenset(tags)
