"""The tables of the in-memory store and what every part of it shares: one lock, the rows, the
indexes the partial unique rule needs, the outbox, and injected failures.

Each public method of MemoryStore runs inside `_tx(name)`: the one lock held for the whole
change (a change and its outbox entry are one critical section, as they are one transaction in
SQL), after checking whether a failure was injected for `name`. A change is planned first and
applied only once nothing in it can raise, so a failure leaves nothing half done.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime

from payretry.domain.events import OutboxEntry
from payretry.domain.models import ACTIVE_STATES, Attempt, Job, JobState
from payretry.domain.outbox import SinkState
from payretry.domain.ports import WorkerBeat
from payretry.domain.rollups import Rollup, merge
from payretry.domain.webhooks import WebhookRecord
from payretry.errors import StoreError

# Compact JSON, as the SQL outbox stores it: data that could not be stored there fails here too.
_encode = json.JSONEncoder(separators=(",", ":")).encode


def aware(value: datetime) -> datetime:
    """Times in and out are aware UTC; a naive one is refused, as the SQL store refuses it."""
    if value.tzinfo is None:
        raise ValueError("naive datetime given to the store; payretry uses aware UTC")
    return value.astimezone(UTC)


def _aware_or_none(value: datetime | None) -> datetime | None:
    return None if value is None else aware(value)


def stored_job(job: Job, seq: int) -> Job:
    """A job as the store keeps it: its own seq, no lease, no attempts, times in UTC."""
    return replace(
        job,
        seq=seq,
        next_retry_at=_aware_or_none(job.next_retry_at),
        created_at=aware(job.created_at),
        updated_at=aware(job.updated_at),
        expires_at=_aware_or_none(job.expires_at),
        metadata=dict(job.metadata),
        lease_token=None,
        lease_expires_at=None,
        attempts=(),
        advice=None,  # not a column of the SQL store's jobs either
    )


@dataclass
class JobRow:
    """One job: its record (kept without attempts), its attempt rows by number, and what SQS
    dispatch knows of it."""

    job: Job
    attempts: dict[int, Attempt] = field(default_factory=dict)
    dispatch_attempt: int | None = None
    dispatched_at: datetime | None = None
    dispatch_message_id: str | None = None

    @property
    def seq(self) -> int:
        return self.job.seq

    def record(self, with_attempts: bool = True) -> Job:
        if not with_attempts or not self.attempts:
            return self.job
        return replace(self.job, attempts=tuple(self.attempts[n] for n in sorted(self.attempts)))

    def held_by(self, token: str) -> bool:
        """The lease fence: still running under the token its claim gave it."""
        return self.job.state is JobState.RUNNING and self.job.lease_token == token


class Tables:
    """The state and the helpers every part of the store uses, under one lock."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._rows: dict[int, JobRow] = {}  # by seq; insertion order is seq order
        self._by_id: dict[str, int] = {}
        self._by_transaction: dict[str, list[int]] = {}
        self._active: dict[str, int] = {}  # transaction id -> the seq of its active job
        self._outbox: dict[int, OutboxEntry] = {}  # by seq, in write (= delivery) order
        self._sinks: dict[str, SinkState] = {}
        self._workers: dict[str, WorkerBeat] = {}
        self._next_seq = 1
        self._next_entry = 1  # never handed out twice, even after a purge (AUTOINCREMENT)
        self._faults: Counter[str] = Counter()
        self._rollups: dict[tuple[date, str, str, str], Rollup] = {}  # never purged
        self._webhooks: dict[str, WebhookRecord] = {}  # Stripe events by id (testing/webhooks)

    # -- failures --------------------------------------------------------------------------

    def fail(self, method: str, times: int = 1) -> None:
        """The next `times` calls of `method` raise StoreError and change nothing, as a
        database that went away would (`store.fail("finish")`)."""
        if not callable(getattr(self, method, None)) or method.startswith("_"):
            raise ValueError(f"{method!r} is not a method of the store")
        with self._lock:
            self._faults[method] += times

    @contextmanager
    def _tx(self, method: str) -> Iterator[None]:
        with self._lock:
            if self._faults[method] > 0:
                self._faults[method] -= 1
                raise StoreError(f"memory store: {method} failed (injected by fail())")
            yield

    # -- rows ------------------------------------------------------------------------------

    def _row(self, job_id: str) -> JobRow | None:
        seq = self._by_id.get(job_id)
        return None if seq is None else self._rows[seq]

    def _put(self, row: JobRow, job: Job) -> None:
        """Replace a row's record, keeping the one-active-job-per-transaction index."""
        txn = job.transaction_id
        if row.job.state in ACTIVE_STATES and self._active.get(txn) == row.seq:
            del self._active[txn]
        row.job = job
        if job.state in ACTIVE_STATES:
            self._active[txn] = row.seq

    def _add(self, job: Job) -> JobRow:
        row = JobRow(job)
        self._rows[job.seq] = row
        self._by_id[job.id] = job.seq
        self._by_transaction.setdefault(job.transaction_id, []).append(job.seq)
        if job.state in ACTIVE_STATES:
            self._active[job.transaction_id] = job.seq
        return row

    def _drop(self, row: JobRow) -> None:
        job = row.job
        del self._rows[row.seq]
        del self._by_id[job.id]
        seqs = self._by_transaction[job.transaction_id]
        seqs.remove(row.seq)
        if not seqs:
            del self._by_transaction[job.transaction_id]
        if self._active.get(job.transaction_id) == row.seq:
            del self._active[job.transaction_id]

    # -- the outbox ------------------------------------------------------------------------

    @staticmethod
    def _encoded(entries: Iterable[OutboxEntry]) -> list[OutboxEntry]:
        """Entries as they read back once stored (data through JSON). Done before a change is
        applied: an entry that cannot be stored stops the change."""
        return [replace(e, data=json.loads(_encode(e.data)), txid=0) for e in entries]

    def _roll(self, rollups: Iterable[Rollup]) -> None:
        """Add rollups, as the SQL store's grouped upsert does (in the change's critical
        section)."""
        for r in merge(rollups):
            seen = self._rollups.get(r.identity)
            added = merge([seen, r])[0] if seen else r
            if r.count < 0 and added.count == 0 and added.amount_minor == 0:
                self._rollups.pop(r.identity, None)  # a revival took the only end back
            else:
                self._rollups[r.identity] = added

    def _write(self, entries: Iterable[OutboxEntry]) -> None:
        for entry in entries:
            self._outbox[self._next_entry] = replace(entry, seq=self._next_entry)
            self._next_entry += 1
