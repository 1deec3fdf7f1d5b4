"""MemoryStore: the store in memory, for tests (ours and yours). It keeps the rules the SQL store
keeps, so a service tested on it behaves the same on SQLite and PostgreSQL (the store contract
suite, tests/contract, runs on all three):

- one active job per transaction (DuplicateActive), a bulk insert all or nothing;
- a claim takes due jobs in priority order (priority desc, next retry time, queue order) under
  a new lease token and writes each attempt row with its idempotency key first; a rescued
  attempt keeps its row, and so its key;
- every later write is fenced by the token: a runner whose lease was rescued changes nothing;
- every change writes the outbox entry the domain decided (`change.entry`) with it, under the
  same lock; a change that fails (an injected failure, an entry that cannot be stored) leaves
  no trace;
- the card ledger (testing/cards.py): a queue's, a claim's and an outcome's entries written
  with the change; a claim checks each job with a card first and holds (postpones or blocks)
  one the card-network rules stop;
- Stripe webhooks (testing/webhooks.py): each event's record once, with its changes, all or
  nothing;
- times are aware UTC; `now` is always passed in.

Thread-safe: one lock, held for each call, so the runner's pool and its heartbeat can share it.
`fail(method, times)` makes the next calls of a method raise StoreError, as a database that went
away would.
"""

from __future__ import annotations

import heapq
import uuid
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from payretry.domain.bound import Evicted, QueueBound, evictable, eviction_order
from payretry.domain.card_checks import job_card
from payretry.domain.card_ledger import EntryKind
from payretry.domain.changes import (
    Cancelled,
    ClaimBatch,
    Claimed,
    Finish,
    Held,
    Parked,
    Queued,
    Rescue,
    Settlement,
    WindowClosed,
)
from payretry.domain.models import (
    Attempt,
    AttemptOutcome,
    Job,
    JobState,
    attempt_key,
    check_transition,
)
from payretry.domain.network_rules import NetworkRules
from payretry.domain.ports import DuplicateActive
from payretry.domain.results import AttemptResult
from payretry.errors import NotFound, Refused
from payretry.testing._base import JobRow, aware, stored_job
from payretry.testing.dispatch import DispatchMixin
from payretry.testing.events import EventsMixin
from payretry.testing.lookups import LookupsMixin
from payretry.testing.reports import ReportsMixin
from payretry.testing.webhooks import WebhooksMixin

_RESCUED = "lease expired; rescued without counting an attempt"
_WINDOW_CLOSED = "the payment window closed before the next attempt could be made"


def _claim_order(job: Job) -> tuple[int, datetime, int]:
    assert job.next_retry_at is not None
    return (-job.priority, job.next_retry_at, job.seq)


def _outcome(result: AttemptResult) -> AttemptOutcome:
    if result.succeeded:
        return AttemptOutcome.SUCCEEDED
    return AttemptOutcome.AWAITING if result.awaiting else AttemptOutcome.FAILED


def _finished(attempt: Attempt, result: AttemptResult, finish: Finish | Settlement) -> Attempt:
    decision = finish.decision
    return replace(
        attempt,
        outcome=_outcome(result),
        finished_at=aware(finish.finished_at),
        error_code=result.error_code,
        decline_code=result.decline_code,
        message=result.message,
        reference=result.reference,
        decision=decision.outcome.value,
        next_retry_at=decision.next_retry_at,
    )


class MemoryStore(ReportsMixin, DispatchMixin, EventsMixin, WebhooksMixin, LookupsMixin):
    """Jobs, attempts, the outbox, sinks, dispatch marks, worker beats, the card ledger and
    Stripe webhook records, in memory; and the API's reads of them (JobLookups)."""

    url = "memory://"

    # -- reading -------------------------------------------------------------------------------

    def get(self, job_id: str, *, with_attempts: bool = True) -> Job | None:
        with self._tx("get"):
            row = self._row(job_id)
            return None if row is None else row.record(with_attempts)

    def find(self, transaction_id: str) -> Job | None:
        with self._tx("find"):
            seqs = self._by_transaction.get(transaction_id)
            if not seqs:
                return None
            seq = self._active.get(transaction_id, max(seqs))
            return self._rows[seq].record()

    def active_for(self, transaction_ids: Sequence[str]) -> dict[str, Job]:
        with self._tx("active_for"):
            return {
                txn: self._rows[self._active[txn]].job
                for txn in transaction_ids
                if txn in self._active
            }

    def succeeded_for(self, transaction_ids: Sequence[str]) -> set[str]:
        with self._tx("succeeded_for"):
            return {
                txn
                for txn in transaction_ids
                if any(
                    self._rows[seq].job.state is JobState.SUCCEEDED
                    for seq in self._by_transaction.get(txn, ())
                )
            }

    def _due(self, now: datetime, limit: int) -> list[JobRow]:
        """Scheduled jobs due at `now`, in claim order, at most `limit`."""
        due = (
            r
            for r in self._rows.values()
            if r.job.state is JobState.SCHEDULED
            and r.job.next_retry_at is not None
            and r.job.next_retry_at <= now
        )
        return heapq.nsmallest(max(0, limit), due, key=lambda r: _claim_order(r.job))

    def list_jobs(
        self,
        *,
        state: JobState | None = None,
        user_id: str | None = None,
        due_at: datetime | None = None,
        limit: int = 100,
    ) -> list[Job]:
        with self._tx("list_jobs"):
            if due_at is not None:
                rows = self._due(aware(due_at), len(self._rows))
            else:
                rows = list(reversed(self._rows.values()))  # newest first
            found = [
                r.record()
                for r in rows
                if (state is None or r.job.state is state)
                and (user_id is None or r.job.user_id == user_id)
            ]
            return found[: max(0, limit)]

    def due_preview(self, now: datetime, limit: int) -> list[Job]:
        with self._tx("due_preview"):
            return [r.job for r in self._due(aware(now), limit)]

    # -- queueing and cancelling -----------------------------------------------------------------

    def _check_new(self, jobs: Sequence[Job]) -> None:
        """The unique rules: a job id once; one active job per transaction."""
        ids: set[str] = set()
        active: set[str] = set()
        for job in jobs:
            if job.id in self._by_id or job.id in ids:
                raise DuplicateActive(job.transaction_id)
            ids.add(job.id)
            if job.state.final:
                continue
            txn = job.transaction_id
            if txn in self._active or txn in active:
                raise DuplicateActive(txn)
            active.add(txn)

    def _make_room(self, bound: QueueBound | None, jobs: Sequence[Job]) -> list[Evicted]:
        """What a full queue evicts for `jobs` (domain/bound.py), or QueueFull; nothing is
        changed here: the caller applies it with its own writes."""
        if bound is None:
            return []
        active = len(self._active)
        needed = bound.evictions(active, len(jobs))
        lowest = heapq.nsmallest(
            needed,
            (r.job for r in self._rows.values() if evictable(r.job)),
            key=eviction_order,
        )
        return bound.admit(jobs, active, lowest, aware(jobs[0].created_at))

    def _evict(self, evicted: Sequence[Evicted]) -> None:
        entries = self._encoded(e.entry for e in evicted)
        for e in evicted:
            row = self._rows[e.job.seq]
            check_transition(row.job.state, e.job.state)
            self._put(row, replace(e.job, attempts=()))
        self._write(entries)
        self._roll(r for e in evicted for r in e.rollups)

    def insert(self, queued: Queued, *, bound: QueueBound | None = None) -> Job:
        with self._tx("insert"):
            self._check_new([queued.job])
            evicted = self._make_room(bound, [queued.job])
            entries = self._encoded([queued.entry])
            self._evict(evicted)
            row = self._add(stored_job(queued.job, self._next_seq))
            self._next_seq += 1
            self._write_cards([queued])
            self._write(entries)
            return row.record()

    def insert_many(self, queued: Sequence[Queued], *, bound: QueueBound | None = None) -> None:
        if not queued:
            return
        queued = Queued.in_claim_order(queued)  # as the SQL store writes them
        with self._tx("insert_many"):
            try:
                self._check_new([q.job for q in queued])
            except DuplicateActive:
                raise DuplicateActive(
                    "another job became active meanwhile; nothing written"
                ) from None
            evicted = self._make_room(bound, [q.job for q in queued])
            entries = self._encoded(Queued.entries(queued))
            self._evict(evicted)
            for q in queued:
                self._add(stored_job(q.job, self._next_seq))
                self._next_seq += 1
            self._write_cards(queued)
            self._write(entries)

    def _write_cards(self, queued: Sequence[Queued]) -> None:
        """The queueing declines, and the links of jobs that came with a payment method and
        their card (as the SQL store writes them)."""
        self._add_entries(q.card_entry for q in queued if q.card_entry is not None)
        self._add_links(
            link
            for q in queued
            if q.card_entry is not None
            and (card := job_card(q.job)) is not None
            and (link := card.link) is not None
        )

    def cancel(self, cancelled: Cancelled) -> Job:
        seen = cancelled.job
        with self._tx("cancel"):
            row = self._row(seen.id)
            if row is None:
                raise NotFound(f"no job {seen.id}")
            state = row.job.state
            if state is JobState.RUNNING:
                raise Refused("an attempt is in progress; cancel again once it has finished")
            check_transition(state, JobState.CANCELLED)
            if state is not seen.state or row.job.attempt_count != seen.attempt_count:
                raise Refused("the job changed while it was being cancelled; look again")
            entries = self._encoded([cancelled.entry])
            self._put(
                row,
                replace(
                    row.job,
                    state=JobState.CANCELLED,
                    reason=cancelled.reason,
                    next_retry_at=None,
                    updated_at=aware(cancelled.at),
                ),
            )
            self._write(entries)
            self._roll(cancelled.rollups)
            return row.record()

    # -- leases ----------------------------------------------------------------------------------

    def rescue(self, now: datetime, *, max_rescues: int = 3) -> Rescue:
        """Expired leases back to scheduled, the attempt's rescue counted; one rescued
        `max_rescues` times already is parked instead (its attempt row and key kept)."""
        now = aware(now)
        with self._tx("rescue"):
            expired = [
                r
                for r in self._rows.values()
                if r.job.state is JobState.RUNNING
                and r.job.lease_expires_at is not None
                and r.job.lease_expires_at <= now
            ]
            planned = []
            for row in expired:
                job = replace(row.job, lease_token=None, lease_expires_at=None, updated_at=now)
                if job.rescues >= max_rescues:
                    reason = Parked.reason(job.attempt_count + 1, job.rescues)
                    job = replace(job, state=JobState.PARKED, next_retry_at=None, reason=reason)
                else:
                    job = replace(
                        job, state=JobState.SCHEDULED, rescues=job.rescues + 1, reason=_RESCUED
                    )
                planned.append((row, job))
            parked = [job for _, job in planned if job.state is JobState.PARKED]
            entries = self._encoded(Parked(job, now).entry for job in parked)
            for row, job in planned:
                self._put(row, job)
            self._write(entries)
            return Rescue(len(planned) - len(parked), tuple(parked))

    def abandon_expired(self, now: datetime) -> list[Job]:
        now = aware(now)
        with self._tx("abandon_expired"):
            lapsed = [
                r
                for r in self._rows.values()
                if r.job.state is JobState.SCHEDULED
                and r.job.expires_at is not None
                and r.job.expires_at <= now
            ]
            jobs = [
                replace(
                    r.job,
                    state=JobState.ABANDONED,
                    reason=_WINDOW_CLOSED,
                    next_retry_at=None,
                    updated_at=now,
                )
                for r in lapsed
            ]
            closed = [WindowClosed(job, now) for job in jobs]
            entries = self._encoded(c.entry for c in closed)
            for row, job in zip(lapsed, jobs, strict=True):
                self._put(row, job)
            self._write(entries)
            self._roll(r for c in closed for r in c.rollups)
            return jobs

    def claim(
        self,
        now: datetime,
        limit: int,
        lease_for: timedelta,
        *,
        job_id: str | None = None,
        rules: NetworkRules | None = None,
    ) -> ClaimBatch:
        """Take up to `limit` due jobs in priority order under a new lease and write their
        attempt rows (a rescued attempt keeps its row and key); `job_id`: that job, due or not.
        A job with a card is checked against its card's ledger first: one the network rules
        hold is postponed or blocked instead (`ClaimBatch.held`), its lease given back."""
        now = aware(now)
        token = uuid.uuid4().hex
        with self._tx("claim"):
            if job_id is not None:  # an operator's retry may also take a parked job
                row = self._row(job_id)
                claimable = (JobState.SCHEDULED, JobState.PARKED)
                picked = [row] if row is not None and row.job.state in claimable else []
            else:
                picked = self._due(now, limit)
            leased = [
                replace(
                    row.job,
                    state=JobState.RUNNING,
                    lease_token=token,
                    lease_expires_at=now + lease_for,
                    updated_at=now,
                )
                for row in picked
            ]
            checks, new = self._check_claims(leased, now, rules or NetworkRules())
            claimed: list[Claimed] = []
            held: list[tuple[JobRow, Held]] = []
            taken: list[JobRow] = []
            for row, job, card in zip(picked, leased, checks, strict=True):
                if isinstance(card, Held):
                    held.append((row, card))
                    continue
                number = job.attempt_count + 1
                claimed.append(Claimed(job, number, attempt_key(job.id, number), token, card))
                taken.append(row)
            entries = self._encoded([*(c.entry for c in claimed), *(h.entry for _, h in held)])
            for row, c in zip(taken, claimed, strict=True):
                self._put(row, c.job)
                row.attempts.setdefault(
                    c.attempt_number,
                    Attempt(c.attempt_number, c.idempotency_key, AttemptOutcome.PENDING, now),
                )
            for row, h in held:
                self._put(row, h.job)
            self._add_entries(new)
            self._write(entries)
            self._roll(r for _, h in held for r in h.rollups)
            return ClaimBatch(claimed, [h for _, h in held])

    def _held(self, claimed: Claimed) -> JobRow | None:
        row = self._rows.get(claimed.job.seq)
        return row if row is not None and row.held_by(claimed.lease_token) else None

    def finish(self, finishes: Sequence[Finish]) -> list[bool]:
        """Record outcomes, each fenced by its lease token; False where the lease was lost."""
        if not finishes:
            return []
        for f in finishes:
            check_transition(JobState.RUNNING, f.decision.state)
        with self._tx("finish"):
            held = [self._held(f.claimed) for f in finishes]
            planned: list[tuple[JobRow, Job, Attempt | None]] = []
            for f, row in zip(finishes, held, strict=True):
                if row is None:
                    continue
                c, d, result = f.claimed, f.decision, f.result
                action = result.action
                if action is not None and action.expires_at is not None:
                    action = replace(action, expires_at=aware(action.expires_at))
                job = replace(
                    row.job,
                    state=d.state,
                    attempt_count=c.attempt_number,
                    max_attempts=d.max_attempts or c.job.max_attempts,
                    next_retry_at=d.next_retry_at,
                    reason=d.reason,
                    policy_code=d.row.code,
                    network_rule=d.rule,
                    lease_token=None,
                    lease_expires_at=None,
                    rescues=0,
                    updated_at=aware(f.finished_at),
                    action=action,
                )
                attempt = row.attempts.get(c.attempt_number)
                planned.append((row, job, attempt and _finished(attempt, result, f)))
            entries = self._encoded(f.entry for f, row in zip(finishes, held, strict=True) if row)
            settles = [
                (settled, f.claimed.job)
                for f, row in zip(finishes, held, strict=True)
                if row is not None and (settled := f.ledger) is not None
            ]
            for row, job, attempt in planned:
                self._put(row, job)
                if attempt is not None:
                    row.attempts[attempt.number] = attempt
            for job_id, learnt in self._settle_entries(settles).items():
                row = self._row(job_id)
                if row is not None:
                    self._put(
                        row,
                        replace(
                            row.job,
                            card_network=learnt.card_network,
                            card_fingerprint=learnt.card_fingerprint,
                        ),
                    )
            self._write(entries)
            self._roll(r for f, row in zip(finishes, held, strict=True) if row for r in f.rollups)
            return [row is not None for row in held]

    def extend_leases(self, claimed: Sequence[Claimed], until: datetime) -> int:
        until = aware(until)
        with self._tx("extend_leases"):
            extended = 0
            for c in claimed:
                row = self._held(c)
                if row is not None:
                    self._put(row, replace(row.job, lease_expires_at=until))
                    extended += 1
            return extended

    def release(self, claimed: Sequence[Claimed], now: datetime) -> int:
        """Give back claimed jobs that were never sent: scheduled again, attempt row removed."""
        now = aware(now)
        with self._tx("release"):
            released = 0
            for c in claimed:
                row = self._held(c)
                if row is None:
                    continue
                attempt = row.attempts.get(c.attempt_number)
                # Only a row this claim wrote: a re-sent attempt keeps its first send time.
                if (
                    attempt is not None
                    and attempt.outcome is AttemptOutcome.PENDING
                    and attempt.started_at == c.job.updated_at
                ):
                    del row.attempts[c.attempt_number]
                sent = c.card.entry_of(c.job.id, c.attempt_number) if c.card else None
                if sent is not None and sent.kind is EntryKind.ATTEMPT:
                    if sent.at == c.job.updated_at:  # this claim's entry, not a first send's
                        self._unclaim([sent])
                self._put(
                    row,
                    replace(
                        row.job,
                        state=JobState.SCHEDULED,
                        lease_token=None,
                        lease_expires_at=None,
                        updated_at=now,
                    ),
                )
                released += 1
            return released

    # -- waiting on the customer -----------------------------------------------------------------

    def awaiting(self, *, after_seq: int = 0, limit: int = 200) -> list[Job]:
        with self._tx("awaiting"):
            found = [
                r.job
                for r in self._rows.values()
                if r.job.state is JobState.AWAITING_PAYER and r.seq > after_seq
            ]
            return found[: max(0, limit)]

    def settle_awaiting(self, settlements: Sequence[Settlement]) -> list[bool]:
        """Each settlement applies only while its job still awaits that same attempt, so two
        runners checking one session record its end once."""
        for s in settlements:
            check_transition(JobState.AWAITING_PAYER, s.decision.state)
        with self._tx("settle_awaiting"):
            applied: list[bool] = []
            taken: set[int] = set()
            for s in settlements:
                row = self._rows.get(s.job.seq)
                ok = (
                    row is not None
                    and row.seq not in taken
                    and row.job.state is JobState.AWAITING_PAYER
                    and row.job.attempt_count == s.job.attempt_count
                )
                if ok:
                    taken.add(s.job.seq)
                applied.append(ok)
            entries = self._encoded(
                s.entry for s, ok in zip(settlements, applied, strict=True) if ok
            )
            for s, ok in zip(settlements, applied, strict=True):
                if ok:
                    self._settle(self._rows[s.job.seq], s)
            self._write(entries)
            settled = [s for s, ok in zip(settlements, applied, strict=True) if ok]
            self._roll(r for s in settled for r in s.rollups)
            return applied

    def _settle(self, row: JobRow, s: Settlement) -> None:
        d = s.decision
        self._put(
            row,
            replace(
                row.job,
                state=d.state,
                max_attempts=d.max_attempts or s.job.max_attempts,
                next_retry_at=d.next_retry_at,
                reason=d.reason,
                policy_code=d.row.code,
                action=None,
                updated_at=aware(s.finished_at),
            ),
        )
        attempt = row.attempts.get(s.number)
        if attempt is not None:
            row.attempts[s.number] = _finished(attempt, s.result, s)

    def close(self) -> None:
        """Nothing to let go of: the data stays, as a database outlives its connections."""
