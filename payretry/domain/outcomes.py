"""What a run reports: each job's outcome (JobResult) and the run's counts (RunReport). Every
kind of result is built here, from the change it reports, so `run-due --json`, `retry`, the SQS
worker and the API all describe an outcome the same way."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from payretry.domain.changes import Finish, Held, Settlement, Unsettled
from payretry.domain.dispatch import Dispatch
from payretry.domain.durations import iso
from payretry.domain.models import Job, JobState

LOST_LEASE = "lost_lease"
IN_DOUBT = "in_doubt"
DISPATCHED = "dispatched"
PARKED = "parked"
POSTPONED = "postponed"  # claimed, but a card-network rule moved the attempt: not sent
BLOCKED = "blocked"
# Outcomes whose attempt was recorded: what followed is in the database.
RECORDED = frozenset(
    {"succeeded", "rescheduled", "failed", "exhausted", "abandoned", "awaiting_payer", "blocked"}
)


@dataclass(frozen=True, slots=True)
class JobResult:
    transaction_id: str
    job_id: str
    attempt: int
    outcome: str  # succeeded, rescheduled, failed, exhausted, abandoned, lost_lease, in_doubt, ...
    state: str
    error_code: str | None = None
    decline_code: str | None = None
    next_retry_at: datetime | None = None
    reason: str | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "transaction_id": self.transaction_id,
            "job_id": self.job_id,
            "attempt": self.attempt,
            "outcome": self.outcome,
            "state": self.state,
            "error_code": self.error_code,
            "decline_code": self.decline_code,
            "next_retry_at": iso(self.next_retry_at),
            "reason": self.reason,
        }

    @property
    def recorded(self) -> bool:
        return self.outcome in RECORDED

    @classmethod
    def of_finish(cls, finish: Finish, applied: bool) -> JobResult:
        """An attempt's outcome; `applied` False: the lease was lost, the result discarded."""
        job, decision, result = finish.claimed.job, finish.decision, finish.result
        return cls(
            job.transaction_id,
            job.id,
            finish.claimed.attempt_number,
            decision.outcome.value if applied else LOST_LEASE,
            decision.state.value if applied else "unknown",
            result.error_code,
            result.decline_code,
            decision.next_retry_at,
            decision.reason,
        )

    @classmethod
    def of_unsettled(cls, item: Unsettled) -> JobResult:
        job = item.claimed.job
        return cls(
            job.transaction_id,
            job.id,
            item.claimed.attempt_number,
            IN_DOUBT,
            JobState.RUNNING.value,
            item.error_code,
            reason=item.message,
        )

    @classmethod
    def of_settlement(cls, settlement: Settlement) -> JobResult:
        job, decision, result = settlement.job, settlement.decision, settlement.result
        return cls(
            job.transaction_id,
            job.id,
            settlement.number,
            decision.outcome.value,
            decision.state.value,
            result.error_code,
            result.decline_code,
            decision.next_retry_at,
            decision.reason,
        )

    @classmethod
    def of_parked(cls, job: Job) -> JobResult:
        """A job whose attempt was rescued too often, held for an operator."""
        return cls(
            job.transaction_id,
            job.id,
            job.attempt_count + 1,
            PARKED,
            job.state.value,
            reason=job.reason,
        )

    @classmethod
    def of_held(cls, held: Held) -> JobResult:
        """A claimed job a card-network rule kept from its attempt: postponed or blocked."""
        job = held.job
        return cls(
            job.transaction_id,
            job.id,
            held.number,
            BLOCKED if held.blocked else POSTPONED,
            job.state.value,
            job.error_code,
            job.decline_code,
            job.next_retry_at,
            job.reason,
        )

    @classmethod
    def of_window_closed(cls, job: Job) -> JobResult:
        """A waiting job abandoned because its window closed: the attempt never made."""
        return cls(
            job.transaction_id,
            job.id,
            job.attempt_count + 1,
            "abandoned",
            job.state.value,
            reason=job.reason,
        )

    @classmethod
    def of_dispatch(cls, dispatch: Dispatch, queue: str, delay_seconds: int) -> JobResult:
        return cls(
            dispatch.transaction_id,
            dispatch.job_id,
            dispatch.attempt_number,
            DISPATCHED,
            JobState.SCHEDULED.value,
            next_retry_at=dispatch.next_retry_at,
            reason=f"sent to {queue} with DelaySeconds={delay_seconds}",
        )


OnResult = Callable[[JobResult], None]


@dataclass
class RunReport:
    counts: Counter[str] = field(default_factory=Counter)
    rescued: int = 0
    dispatching: bool = False  # a pass that sends due jobs to a queue (sqs mode)

    @property
    def processed(self) -> int:
        """Attempts made and recorded, whatever followed (abandoned after an attempt too)."""
        return self.counts["attempted"]

    def as_dict(self) -> dict[str, int]:
        counts = {
            "processed": self.processed,
            **{
                name: self.counts[name]
                for name in (
                    "succeeded",
                    "rescheduled",
                    "failed",
                    "exhausted",
                    "abandoned",
                    LOST_LEASE,
                    "released",
                    "unrecorded",
                    "unfinished",
                    IN_DOUBT,
                    "awaiting_payer",
                    PARKED,
                    POSTPONED,
                    BLOCKED,
                )
            },
            "rescued": self.rescued,
        }
        if self.dispatching:
            counts[DISPATCHED] = self.counts[DISPATCHED]
            counts["resent"] = self.counts["resent"]
        return counts
