"""The simulated processor: outcomes from the job's `simulate` metadata or a seeded draw.

`simulate` lists one entry per attempt, `succeeded` or an error code (a decline as
`card_declined:insufficient_funds`), for example `processing_error,succeeded`, or `checkout`: a
simulated Checkout Session (`sim_cs_...`) the customer never completes, which the job waits on
until it is cancelled (cancelling expires it: the ExpiresActions port). Without it the
outcome is drawn from a random generator seeded by (seed, job id, attempt), so a run is repeatable.

Like a real processor it honours idempotency keys: with a ledger file, every key is recorded once
(under a unique constraint) with its outcome, and a key seen again replays that outcome without a
second charge; `replays` counts how often that happened.
"""

from __future__ import annotations

import random
import sqlite3
import threading
import time
from datetime import timedelta

from payretry.domain.models import CustomerAction, Job
from payretry.domain.results import ActionClosed, AttemptRequest, AttemptResult, Closing
from payretry.errors import Refused

# What a failed simulated attempt looks like: (error code, decline code, weight).
_FAILURES: tuple[tuple[str, str | None, int], ...] = (
    ("processing_error", None, 30),
    ("network_error", None, 20),
    ("card_declined", "insufficient_funds", 20),
    ("service_unavailable", None, 10),
    ("card_declined", "do_not_honor", 8),
    ("rate_limit_exceeded", None, 5),
    ("card_declined", "stolen_card", 4),
    ("authentication_failed", None, 3),
)


SESSION_PREFIX = "sim_cs_"  # the simulated Checkout Sessions' ids


def _parse_entry(entry: str) -> AttemptResult:
    entry = entry.strip()
    if entry in ("succeeded", "success", "ok"):
        return AttemptResult.success()
    code, _, decline = entry.partition(":")
    return AttemptResult.failure(code, decline or None, f"simulated {entry}")


class SimulatedProcessor:
    name = "simulated"
    needs_history = False
    rate: float | None = None

    def __init__(
        self,
        *,
        success_rate: float = 0.7,
        latency: timedelta = timedelta(0),
        seed: int = 0,
        ledger: str | None = None,
    ) -> None:
        self.success_rate = success_rate
        self.latency = latency.total_seconds()
        self.seed = seed
        self.replays = 0
        self._ledger_path = ledger
        self._local = threading.local()
        self._lock = threading.Lock()
        self._conns: list[sqlite3.Connection] = []
        if ledger:
            with self._ledger() as conn:
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS charges (idempotency_key TEXT PRIMARY KEY,"
                    " transaction_id TEXT NOT NULL, outcome TEXT NOT NULL, at REAL NOT NULL,"
                    " sends INTEGER NOT NULL DEFAULT 1)"
                )

    def _ledger(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            assert self._ledger_path is not None
            conn = sqlite3.connect(
                self._ledger_path, timeout=60, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA journal_mode=WAL")
            self._local.conn = conn
            with self._lock:
                self._conns.append(conn)
        return conn

    def decide(self, job: Job, number: int) -> AttemptResult:
        plan = job.metadata.get("simulate")
        if plan:
            entries = [e for e in plan.split(",") if e.strip()]
            if entries:
                # Attempt 0, a payment's first attempt (POST /api/payments/process), reads the
                # first entry, like attempt 1.
                entry = entries[max(1, min(number, len(entries))) - 1].strip()
                if entry == "checkout":
                    ref = f"{SESSION_PREFIX}{job.id[:12]}_{number}"
                    action = CustomerAction(ref, f"https://checkout.simulated.invalid/{ref}", None)
                    return AttemptResult.awaiting_customer(
                        action, "complete your payment", f"simulated checkout session {ref}"
                    )
                return _parse_entry(entry)
        if self.success_rate >= 1:
            return AttemptResult.success()  # what every draw below would give, without it
        draw = random.Random(f"{self.seed}:{job.id}:{number}")
        if draw.random() < self.success_rate:
            return AttemptResult.success()
        code, decline, _ = draw.choices(_FAILURES, weights=[w for *_, w in _FAILURES])[0]
        message = f"simulated {code}" + (f" ({decline})" if decline else "")
        return AttemptResult.failure(code, decline, message)

    def attempt(self, request: AttemptRequest) -> AttemptResult:
        job, number, idempotency_key = request.job, request.number, request.idempotency_key
        result = self.decide(job, number)
        if result.succeeded and result.action is None:
            result = AttemptResult.success(f"sim_{job.id[:12]}_{number}")
        if self._ledger_path:
            # Recorded when the request arrives, as a processor does: a caller killed while
            # waiting for the answer has still made the charge, and its re-send is a replay.
            outcome = "succeeded" if result.succeeded else (result.error_code or "awaiting")
            conn = self._ledger()
            try:
                conn.execute(
                    "INSERT INTO charges VALUES (?, ?, ?, ?, 1)",
                    (idempotency_key, job.transaction_id, outcome, time.time()),
                )
            except sqlite3.IntegrityError:
                self.replays += 1  # same key again: replay the first answer, charge nothing
                conn.execute(
                    "UPDATE charges SET sends = sends + 1 WHERE idempotency_key = ?",
                    (idempotency_key,),
                )
        if self.latency:
            time.sleep(self.latency)
        return result

    def expire_action(self, job: Job) -> ActionClosed:
        """The ExpiresActions port: a simulated session is never paid, so expiring it is all
        there is; a session some other processor opened is not the simulation's to expire."""
        if job.action is None:
            return ActionClosed(Closing.EXPIRED, "no checkout session was open")
        ref = job.action.ref
        if not ref.startswith(SESSION_PREFIX):
            raise Refused(
                f"checkout session {ref} was not opened by the simulated processor, which cannot "
                "expire it: cancel through the processor that opened it (--processor)"
            )
        return ActionClosed(Closing.EXPIRED, f"simulated checkout session {ref} expired")

    def close(self) -> None:
        with self._lock:
            for conn in self._conns:
                conn.close()
            self._conns.clear()
        self._local = threading.local()
