"""The bounded queue: at most `[queue] max_active` active jobs. Pure.

When a queue would take the active jobs (scheduled, running, awaiting_payer, parked) past the
bound, each new job must take the place of an evictable job of strictly lower priority: the
lowest-priority scheduled job with the latest next retry (the newest of equals) goes first.
A new job that would itself be among the lowest is refused, and nothing is stored; an existing
job of equal priority keeps its place (it was there first).

Never evicted: a running job (its attempt is with the processor), one awaiting the customer,
a parked one, and a scheduled one whose attempt was sent without an outcome (rescued: it must
be re-sent under the same key to learn whether it charged).

A bulk queue is one decision, all or nothing: its new jobs may evict as many jobs as they
number, the evicted ones each of lower priority than every new job; if any new job would be
among the lowest, the whole file is refused, its lowest rows named. Its new jobs never evict
one another. When the bound was lowered below the jobs already active, nothing is evicted to
catch up: each new job takes at most one job's place, and the queue drains as jobs finish.

The store reads the active count and the `evictions(...)` most evictable jobs in the queue's own
transaction (serialised: BEGIN IMMEDIATE on SQLite, an advisory lock on PostgreSQL), asks
`admit`, and writes each `Evicted` with the new jobs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from payretry.domain.events import OutboxEntry, on_evicted
from payretry.domain.models import Job, JobState
from payretry.domain.rollups import Rollup, job_ended
from payretry.errors import Refused

_NEVER_EVICTED = "running, awaiting_payer and parked jobs, and attempts sent without an outcome"


def evictable(job: Job) -> bool:
    """A job a full queue may drop: scheduled, with no attempt sent and left without an
    outcome (a rescued attempt must be re-sent under its key)."""
    return job.state is JobState.SCHEDULED and job.rescues == 0


def eviction_order(job: Job) -> tuple[int, float, int]:
    """Sort key, most evictable first: the lowest priority, then the latest next retry, then
    the newest job."""
    latest = job.next_retry_at.timestamp() if job.next_retry_at is not None else float("inf")
    return (job.priority, -latest, -job.seq)


class QueueFull(Refused):
    """The queue is full; nothing was queued."""

    kind = "queue_full"

    def __init__(self, message: str, refused: Mapping[str, str]) -> None:
        super().__init__(message)
        self.refused = dict(refused)  # job id -> why that new job was refused


@dataclass(frozen=True, slots=True)
class Evicted:
    """A scheduled job dropped from a full queue to make room for `by` (`job` as stored
    after it, its reason in a sentence)."""

    job: Job
    by: Job
    at: datetime
    max_active: int

    @classmethod
    def of(cls, victim: Job, by: Job, at: datetime, max_active: int) -> Evicted:
        reason = (
            f"evicted at queue time to make room for job {by.id} (transaction "
            f"{by.transaction_id}, priority {by.priority}): the queue holds at most "
            f"{max_active} active jobs ([queue] max_active), and this was the lowest-priority "
            f"scheduled job (priority {victim.priority}) with the latest next retry"
        )
        job = replace(
            victim,
            state=JobState.EVICTED,
            reason=reason,
            next_retry_at=None,
            lease_token=None,
            lease_expires_at=None,
            updated_at=at,
        )
        return cls(job, by, at, max_active)

    @property
    def entry(self) -> OutboxEntry:
        return on_evicted(self.job, self.at, self.by, self.max_active)

    @property
    def rollups(self) -> list[Rollup]:
        job = self.job
        return job_ended(
            JobState.EVICTED.value,
            self.at,
            currency=job.money.currency,
            amount_minor=job.money.amount_minor,
            error_code=job.error_code,
            decline_code=job.decline_code,
            first_failure_at=job.created_at,
        )


@dataclass(frozen=True, slots=True)
class QueueBound:
    """`[queue] max_active`: the most active jobs the queue holds."""

    max_active: int

    def __post_init__(self) -> None:
        if self.max_active < 1:
            raise ValueError("max_active must be at least 1")

    def evictions(self, active: int, incoming: int) -> int:
        """How many jobs `incoming` new ones must evict with `active` already active: as many
        as take the count past the bound, and at most one per new job."""
        return max(0, min(incoming, active + incoming - self.max_active))

    def admit(
        self, incoming: Sequence[Job], active: int, lowest: Sequence[Job], at: datetime
    ) -> list[Evicted]:
        """The jobs to evict so that `incoming` fits, given `active` jobs already active and
        `lowest`, the most evictable of them (at least `evictions(...)` of them when there are
        that many). Raises QueueFull, naming each new job that would be among the lowest."""
        needed = self.evictions(active, len(incoming))
        if needed == 0:
            return []
        new = sorted(incoming, key=eviction_order)
        old = sorted((job for job in lowest if evictable(job)), key=eviction_order)[:needed]
        victims: list[Job] = []
        refused: list[Job] = []
        while len(victims) + len(refused) < needed:
            lowest_new = new[len(refused)] if len(refused) < len(new) else None
            lowest_old = old[len(victims)] if len(victims) < len(old) else None
            if lowest_new is None and lowest_old is None:
                break
            # At equal priority the new job is the lower: the job already queued keeps its place.
            if lowest_new is not None and (
                lowest_old is None or lowest_new.priority <= lowest_old.priority
            ):
                refused.append(lowest_new)
            else:
                assert lowest_old is not None
                victims.append(lowest_old)
        if refused:
            raise self._full(incoming, active, refused, old)
        return [Evicted.of(v, by, at, self.max_active) for v, by in zip(victims, new, strict=False)]

    def _full(
        self, incoming: Sequence[Job], active: int, refused: Sequence[Job], old: Sequence[Job]
    ) -> QueueFull:
        bound = f"at most {self.max_active} ([queue] max_active)"
        if old:
            lowest = old[0].priority
            above = f"the lowest-priority scheduled job that could make room has priority {lowest}"
        else:
            above = f"no scheduled job can make room ({_NEVER_EVICTED} are never evicted)"
        if len(incoming) == 1:
            job = refused[0]
            why = (
                f"the queue is full ({active} active jobs, {bound}) and this job, of priority "
                f"{job.priority}, would be the lowest: {above}; nothing queued"
            )
            return QueueFull(why, {job.id: why})
        floor = min(job.priority for job in incoming)
        below = sum(1 for job in old if job.priority < floor)
        needed = self.evictions(active, len(incoming))
        full = f"the queue is full ({active} active jobs and {len(incoming)} new, {bound})"
        room = (
            f"{active} active and {len(incoming)} new, {bound}: {needed} must make room, "
            f"{below} scheduled of priority below {floor} can"
        )
        reasons = {
            job.id: f"the queue is full: priority {job.priority} would be among the lowest ({room})"
            for job in refused
        }
        message = f"{full}: {len(refused)} new job(s) would be among the lowest; nothing written"
        return QueueFull(message, reasons)
