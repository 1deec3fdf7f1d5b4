"""run_due: rescue expired leases, close lapsed windows, claim due jobs in priority order,
attempt each through the processor with its attempt's idempotency key, record each outcome
fenced by the lease."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from payretry.domain.durations import iso
from payretry.domain.models import Job
from payretry.domain.policy import Decision, Outcome, RetryPolicy
from payretry.domain.ports import AttemptResult, Claimed, Finish, Processor, Store
from payretry.errors import NotFound, Refused

log = logging.getLogger("payretry")

Clock = Callable[[], datetime]


@dataclass(frozen=True, slots=True)
class JobResult:
    transaction_id: str
    job_id: str
    attempt: int
    outcome: str  # succeeded, rescheduled, failed, exhausted, abandoned, lost_lease
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


@dataclass
class RunReport:
    counts: Counter[str] = field(default_factory=Counter)
    rescued: int = 0

    @property
    def processed(self) -> int:
        return sum(n for k, n in self.counts.items() if k not in ("abandoned", "lost_lease"))

    def as_dict(self) -> dict[str, int]:
        return {
            "processed": self.processed,
            "succeeded": self.counts["succeeded"],
            "rescheduled": self.counts["rescheduled"],
            "failed": self.counts["failed"],
            "exhausted": self.counts["exhausted"],
            "abandoned": self.counts["abandoned"],
            "lost_lease": self.counts["lost_lease"],
            "rescued": self.rescued,
        }


OnResult = Callable[[JobResult], None]


def decide(policy: RetryPolicy, claimed: Claimed, result: AttemptResult, now: datetime) -> Decision:
    job = claimed.job
    if result.succeeded:
        row = policy.lookup(job.error_code, job.decline_code).row
        ref = f" (reference {result.reference})" if result.reference else ""
        return Decision(
            Outcome.SUCCEEDED,
            row,
            f"attempt {claimed.attempt_number} succeeded{ref}",
            None,
            job.max_attempts,
        )
    return policy.after_failure(
        job_id=job.id,
        attempt_number=claimed.attempt_number,
        max_attempts=job.max_attempts,
        error_code=result.error_code or "processing_error",
        decline_code=result.decline_code,
        now=now,
        expires_at=job.expires_at,
    )


class Runner:
    def __init__(
        self,
        store: Store,
        policy: RetryPolicy,
        processor: Processor,
        *,
        clock: Clock,
        lease_for: timedelta = timedelta(minutes=5),
        batch_size: int = 200,
    ) -> None:
        self.store = store
        self.policy = policy
        self.processor = processor
        self.clock = clock
        self.lease_for = lease_for
        self.batch_size = batch_size

    def _process(self, batch: list[Claimed], report: RunReport, on_result: OnResult | None) -> None:
        finishes: list[Finish] = []
        try:
            for index, claimed in enumerate(batch):
                try:
                    result = self.processor.attempt(claimed.job, claimed.idempotency_key)
                except BaseException:
                    # Not sent, or not known to be sent: give back the rest; this one stays leased
                    # and is rescued with its key when the lease expires.
                    self.store.release(batch[index + 1 :], self.clock())
                    raise
                now = self.clock()
                decision = decide(self.policy, claimed, result, now)
                finishes.append(Finish(claimed, result, decision, now))
        finally:
            applied = self.store.finish(finishes)
            for finish, ok in zip(finishes, applied, strict=True):
                self._report(finish, ok, report, on_result)

    def _report(
        self, finish: Finish, ok: bool, report: RunReport, on_result: OnResult | None
    ) -> None:
        claimed, decision = finish.claimed, finish.decision
        outcome = decision.outcome.value if ok else "lost_lease"
        report.counts[outcome] += 1
        extra = {
            "transaction_id": claimed.job.transaction_id,
            "attempt": claimed.attempt_number,
            "error_code": finish.result.error_code,
            "outcome": outcome,
        }
        if not ok:
            log.warning("lease lost before the outcome was recorded; result discarded", extra=extra)
        else:
            log.info("attempt %s", outcome, extra=extra)
        if on_result is not None:
            on_result(
                JobResult(
                    claimed.job.transaction_id,
                    claimed.job.id,
                    claimed.attempt_number,
                    outcome,
                    decision.state.value if ok else "unknown",
                    finish.result.error_code,
                    finish.result.decline_code,
                    decision.next_retry_at,
                    decision.reason,
                )
            )

    def _abandon(self, report: RunReport, on_result: OnResult | None) -> None:
        for job in self.store.abandon_expired(self.clock()):
            report.counts["abandoned"] += 1
            log.info(
                "payment window closed; abandoned", extra={"transaction_id": job.transaction_id}
            )
            if on_result is not None:
                on_result(
                    JobResult(
                        job.transaction_id,
                        job.id,
                        job.attempt_count + 1,
                        "abandoned",
                        job.state.value,
                        reason=job.reason,
                    )
                )

    def run_due(
        self,
        *,
        limit: int | None = None,
        on_result: OnResult | None = None,
        on_batch: Callable[[int], None] | None = None,
    ) -> RunReport:
        """Process due jobs in priority order until none is due or `limit` is reached."""
        report = RunReport()
        report.rescued = self.store.rescue(self.clock())
        done = 0
        while limit is None or done < limit:
            self._abandon(report, on_result)
            size = self.batch_size if limit is None else min(self.batch_size, limit - done)
            batch = self.store.claim(self.clock(), size, self.lease_for)
            if not batch:
                break
            self._process(batch, report, on_result)
            done += len(batch)
            if on_batch is not None:
                on_batch(len(batch))
        return report

    def preview(self, limit: int | None) -> list[Job]:
        return self.store.due_preview(self.clock(), limit or 1000)

    def retry_now(self, transaction_id: str) -> JobResult:
        """An operator- or customer-initiated retry of one job, now."""
        job = self.store.find(transaction_id)
        if job is None:
            raise NotFound(f"no retry job for transaction {transaction_id}")
        if job.state.final:
            raise Refused(f"job for {transaction_id} is already {job.state.value}")
        if job.attempts_remaining <= 0:
            raise Refused(f"no attempts left for {transaction_id}")
        now = self.clock()
        if job.expires_at is not None and job.expires_at <= now:
            self._abandon(RunReport(), None)
            raise Refused(
                f"the payment window for {transaction_id} closed at {iso(job.expires_at)}"
            )
        claimed = self.store.claim(now, 1, self.lease_for, job_id=job.id)
        if not claimed:
            raise Refused(f"an attempt for {transaction_id} is already in progress")
        results: list[JobResult] = []
        self._process(claimed, RunReport(), results.append)
        return results[0]
