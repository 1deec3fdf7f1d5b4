"""run_due: rescue expired leases, close lapsed windows, claim due jobs in priority order,
attempt each through the processor with its attempt's idempotency key, record each outcome
fenced by the lease."""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from payretry.domain.durations import iso
from payretry.domain.models import Job
from payretry.domain.policy import Decision, Outcome, RetryPolicy
from payretry.domain.ports import AttemptResult, Claimed, Finish, Processor, Store
from payretry.errors import NotFound, Refused
from payretry.service.heartbeat import Heartbeat
from payretry.service.pacing import RateLimiter

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
        """Attempts made and recorded, whatever followed (abandoned after an attempt too)."""
        return self.counts["attempted"]

    def as_dict(self) -> dict[str, int]:
        return {
            "processed": self.processed,
            "succeeded": self.counts["succeeded"],
            "rescheduled": self.counts["rescheduled"],
            "failed": self.counts["failed"],
            "exhausted": self.counts["exhausted"],
            "abandoned": self.counts["abandoned"],
            "lost_lease": self.counts["lost_lease"],
            "released": self.counts["released"],
            "unfinished": self.counts["unfinished"],
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
    """Claims due jobs and attempts them: in order on one thread, or through a bounded pool
    paced by a rate limiter. A set `stop` event ends the run gracefully: nothing new starts,
    attempts in flight get `grace` to finish, claimed-but-unstarted jobs are released."""

    def __init__(
        self,
        store: Store,
        policy: RetryPolicy,
        processor: Processor,
        *,
        clock: Clock,
        lease_for: timedelta = timedelta(minutes=5),
        batch_size: int = 200,
        concurrency: int = 1,
        limiter: RateLimiter | None = None,
        stop: threading.Event | None = None,
        grace: timedelta = timedelta(seconds=30),
    ) -> None:
        self.store = store
        self.policy = policy
        self.processor = processor
        self.clock = clock
        self.lease_for = lease_for
        self.batch_size = batch_size
        self.concurrency = max(1, concurrency)
        self.limiter = limiter
        self.stop = stop or threading.Event()
        self.grace = grace

    def claim_size(self, remaining: int | None) -> int:
        """Never claim more than the pool can start before the lease could expire."""
        size = self.batch_size
        if self.limiter is not None:
            startable = int(self.limiter.rate * self.lease_for.total_seconds() / 2)
            size = min(size, max(1, startable))
        if remaining is not None:
            size = min(size, remaining)
        return size

    def _may_start(self) -> bool:
        if self.stop.is_set():
            return False
        if self.limiter is not None:
            return self.limiter.acquire(self.stop)
        return True

    def _attempt(self, claimed: Claimed) -> Finish:
        result = self.processor.attempt(claimed.job, claimed.idempotency_key)
        now = self.clock()
        return Finish(claimed, result, decide(self.policy, claimed, result, now), now)

    def _record(
        self, finishes: list[Finish], report: RunReport, on_result: OnResult | None
    ) -> None:
        applied = self.store.finish(finishes)
        for finish, ok in zip(finishes, applied, strict=True):
            self._report(finish, ok, report, on_result)

    def _release(self, unstarted: list[Claimed], report: RunReport) -> None:
        if unstarted:
            report.counts["released"] += self.store.release(unstarted, self.clock())

    def _process(self, batch: list[Claimed], report: RunReport, on_result: OnResult | None) -> None:
        with Heartbeat(self.store, batch, self.lease_for, self.clock):
            if self.concurrency == 1:
                self._process_in_order(batch, report, on_result)
            else:
                self._process_in_pool(batch, report, on_result)

    def _process_in_order(
        self, batch: list[Claimed], report: RunReport, on_result: OnResult | None
    ) -> None:
        finishes: list[Finish] = []
        try:
            for index, claimed in enumerate(batch):
                if not self._may_start():
                    self._release(batch[index:], report)
                    break
                try:
                    finishes.append(self._attempt(claimed))
                except BaseException:
                    # Not known whether it was sent: this one stays leased and is rescued, then
                    # re-sent with its key, once the lease expires. The rest go back now.
                    self._release(batch[index + 1 :], report)
                    raise
        finally:
            self._record(finishes, report, on_result)

    def _process_in_pool(
        self, batch: list[Claimed], report: RunReport, on_result: OnResult | None
    ) -> None:
        pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="payretry-attempt")
        in_flight: set[Future[Finish]] = set()
        failure: BaseException | None = None

        def collect(done: set[Future[Finish]]) -> None:
            nonlocal failure
            finishes = []
            for future in done:
                try:
                    finishes.append(future.result())
                except BaseException as exc:  # stays leased; rescued and re-sent with its key
                    failure = failure or exc
            self._record(finishes, report, on_result)

        try:
            for index, claimed in enumerate(batch):
                while len(in_flight) >= self.concurrency:
                    done, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
                    collect(done)
                if failure is not None or not self._may_start():
                    self._release(batch[index:], report)
                    break
                in_flight.add(pool.submit(self._attempt, claimed))
            timeout = self.grace.total_seconds() if self.stop.is_set() else None
            done, in_flight = wait(in_flight, timeout=timeout)
            collect(done)
            if in_flight:
                report.counts["unfinished"] += len(in_flight)
                log.warning(
                    "%d attempt(s) still running after the grace period; their leases will "
                    "expire and the rescue will re-send them with the same keys",
                    len(in_flight),
                )
        finally:
            pool.shutdown(wait=not in_flight, cancel_futures=True)
        if failure is not None:
            raise failure

    def _report(
        self, finish: Finish, ok: bool, report: RunReport, on_result: OnResult | None
    ) -> None:
        claimed, decision = finish.claimed, finish.decision
        outcome = decision.outcome.value if ok else "lost_lease"
        report.counts[outcome] += 1
        if ok:
            report.counts["attempted"] += 1
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
        while (limit is None or done < limit) and not self.stop.is_set():
            self._abandon(report, on_result)
            size = self.claim_size(None if limit is None else limit - done)
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
