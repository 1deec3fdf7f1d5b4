"""The ports the service drives: a store of jobs, a payment processor, the customer's actions
some processors wait on, the card ledger the network rules read, and a processor's own retries
of a payment."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from payretry.domain.bound import QueueBound
from payretry.domain.card_checks import CardIdentity, CardPool
from payretry.domain.card_ledger import CardKey, LedgerEntry
from payretry.domain.changes import (
    Cancelled,
    ClaimBatch,
    Claimed,
    Finish,
    Queued,
    Rescue,
    Settlement,
)
from payretry.domain.models import Job, JobState, NewJob
from payretry.domain.network_rules import NetworkRules
from payretry.domain.results import ActionClosed, AttemptRequest, AttemptResult


class Processor(Protocol):
    """Attempts a job's payment. The same idempotency key must never charge twice.

    `needs_history`: hand each job over with its attempts (to resolve earlier unsettled ones).
    `rate`: the most requests per second the processor takes from one process (None: no limit
    known); a run asked to slow down (429) paces itself at this rate.
    """

    name: str
    needs_history: bool
    rate: float | None

    def attempt(self, request: AttemptRequest) -> AttemptResult: ...

    def close(self) -> None: ...


class CustomerActions(Protocol):
    """Attempts that wait on the customer (Checkout Sessions): how each ended."""

    def check_action(self, job: Job) -> AttemptResult | None:
        """The outcome of the customer's action, or None while it is still open (or its state
        could not be read this time)."""
        ...


class ExpiresActions(Protocol):
    """A processor whose customer actions can be closed before they end (Stripe: a Checkout
    Session expired), so the customer cannot pay an attempt payretry has stopped. Asked before
    an `awaiting_payer` job is cancelled."""

    def expire_action(self, job: Job) -> ActionClosed:
        """Close the job's action at the processor and say how it stands now (expired, already
        paid, or paid with a method that settles later). Raises AttemptInDoubt when the
        processor could not be asked (nothing is known, nothing may change)."""
        ...


class RetriedElsewhere(Protocol):
    """A processor that retries some payments itself (Stripe Billing's retries of an invoice):
    asked at queue time, so a payment is never retried by two engines at once."""

    def retried_elsewhere(self, request: NewJob) -> str | None:
        """A sentence saying who already retries this payment (the job is refused), or None."""
        ...


class CardLedger(Protocol):
    """The card ledger (payretry/domain/card_ledger.py): every authorization sent on a card,
    from any job. The store writes it with each change that sends or settles one (a queue, a
    claim, an outcome); this is what the decision and `payretry card` read, and its own
    retention, apart from the jobs'."""

    def card_history(self, key: CardKey, since: datetime) -> list[LedgerEntry]:
        """The card's entries newer than `since`, oldest first (for a payment method's key,
        also the entries written for it under its card's key)."""
        ...

    def card_pool(self, cards: Sequence[CardIdentity], since: datetime) -> CardPool:
        """The entries newer than `since` of many jobs' cards at once (a queue file)."""
        ...

    def purge_card_ledger(self, before: datetime, *, dry_run: bool = False) -> int:
        """Remove entries older than `before` (the ledger's retention, not the jobs')."""
        ...


@dataclass(frozen=True, slots=True)
class Stats:
    total: int
    by_state: Mapping[str, int]
    pending_amount_minor: Mapping[str, int]
    by_error_code: Mapping[str, int]
    attempts_by_outcome: Mapping[str, int]
    success_by_attempt: Mapping[int, tuple[int, int]]  # number -> (succeeded, finished attempts)
    due_now: int
    due_next_hour: int
    oldest_due_at: datetime | None


@dataclass(frozen=True, slots=True)
class WorkerBeat:
    name: str
    kind: str
    started_at: datetime
    beat_at: datetime
    interval: timedelta


class FindsJobs(Protocol):
    def find(self, transaction_id: str) -> Job | None:
        """The active job for a transaction, or else its most recent one."""
        ...


class Store(Protocol):
    def insert(self, queued: Queued, *, bound: QueueBound | None = None) -> Job:
        """Insert one job; raises DuplicateActive when another job is active for its
        transaction. With `bound`, a full queue first evicts the job `bound.admit` names, in
        the same transaction, or raises QueueFull and stores nothing (domain/bound.py)."""
        ...

    def insert_many(self, queued: Sequence[Queued], *, bound: QueueBound | None = None) -> None:
        """Insert many jobs, all or nothing; `bound` as for `insert`, one decision for all."""
        ...

    def get(self, job_id: str, *, with_attempts: bool = True) -> Job | None: ...

    def find(self, transaction_id: str) -> Job | None:
        """The active job for a transaction, or else its most recent one."""
        ...

    def active_for(self, transaction_ids: Sequence[str]) -> dict[str, Job]: ...

    def succeeded_for(self, transaction_ids: Sequence[str]) -> set[str]: ...

    def list_jobs(
        self,
        *,
        state: JobState | None = None,
        user_id: str | None = None,
        due_at: datetime | None = None,
        limit: int = 100,
    ) -> list[Job]: ...

    def cancel(self, cancelled: Cancelled) -> Job:
        """Cancel the job as the caller saw it (same state, same attempt count); Refused when it
        is running or final, NotFound when it is gone."""
        ...

    def rescue(self, now: datetime, *, max_rescues: int = 3) -> Rescue:
        """Return jobs whose lease expired to `scheduled`, counting no attempt (the same
        attempt is sent again under its key); a job whose attempt was already rescued
        `max_rescues` times is parked instead, for an operator."""
        ...

    def abandon_expired(self, now: datetime) -> list[Job]:
        """Scheduled jobs whose payment window has closed become `abandoned`."""
        ...

    def claim(
        self,
        now: datetime,
        limit: int,
        lease_for: timedelta,
        *,
        job_id: str | None = None,
        rules: NetworkRules | None = None,
    ) -> ClaimBatch:
        """Lease up to `limit` due jobs (or the job `job_id`) and write their attempts, in one
        short transaction. A job with a card identity is first checked against the card's
        ledger under `rules` (None: the networks' defaults): one the rules hold is postponed
        or blocked in that transaction instead (`ClaimBatch.held`)."""
        ...

    def finish(self, finishes: Sequence[Finish]) -> list[bool]:
        """Record outcomes, each fenced by its lease token; False where the lease was lost."""
        ...

    def extend_leases(self, claimed: Sequence[Claimed], until: datetime) -> int:
        """Push the lease of jobs still held under their tokens (the heartbeat)."""
        ...

    def release(self, claimed: Sequence[Claimed], now: datetime) -> int: ...

    def awaiting(self, *, after_seq: int = 0, limit: int = 200) -> list[Job]:
        """Jobs waiting on the customer (awaiting_payer), in queue order after `after_seq`."""
        ...

    def settle_awaiting(self, settlements: Sequence[Settlement]) -> list[bool]:
        """Record how customer actions ended, each fenced by the job still awaiting that
        attempt; False where another runner settled it first."""
        ...

    def due_preview(self, now: datetime, limit: int) -> list[Job]: ...

    def stats(self, now: datetime) -> Stats: ...

    def oldest_due(self, now: datetime) -> datetime | None: ...

    def purge(self, before: datetime, *, dry_run: bool = False) -> int:
        """Remove final jobs (and their attempts) last changed before `before`."""
        ...

    def beat(self, name: str, kind: str, interval: timedelta, now: datetime) -> None: ...

    def forget_worker(self, name: str) -> None: ...

    def workers(self) -> list[WorkerBeat]: ...

    def close(self) -> None: ...


class DuplicateActive(Exception):
    """Another job is already active for this transaction (raised by a store's insert)."""
