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
from payretry.domain.models import Job, JobState
from payretry.domain.policy import Decision, Outcome, RetryPolicy
from payretry.domain.ports import AttemptInDoubt, AttemptResult, Claimed, Finish, Processor, Store
from payretry.errors import NotFound, ProcessorError, Refused, StoreError
from payretry.service.attempts import Unsettled, with_history, with_notification
from payretry.service.checkout import check_customer_actions
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
            "unrecorded": self.counts["unrecorded"],
            "unfinished": self.counts["unfinished"],
            "in_doubt": self.counts["in_doubt"],
            "awaiting_payer": self.counts["awaiting_payer"],
            "rescued": self.rescued,
        }


OnResult = Callable[[JobResult], None]


def decide(policy: RetryPolicy, claimed: Claimed, result: AttemptResult, now: datetime) -> Decision:
    job = claimed.job
    if result.action is not None:  # a Checkout Session waits for the customer
        row = policy.lookup(job.error_code, job.decline_code).row
        until = f" until {iso(result.action.expires_at)}" if result.action.expires_at else ""
        return Decision(
            Outcome.AWAITING,
            row,
            f"attempt {claimed.attempt_number}: waiting for the customer to complete checkout "
            f"session {result.action.ref}{until}",
            None,
            job.max_attempts,
        )
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


class Backoff:
    """Waits between reconnection attempts: 0.5 s doubling to 30 s; gives up (re-raises) when
    the database has been away longer than `limit`, or at once when a stop is requested."""

    def __init__(self, limit: timedelta, stop: threading.Event) -> None:
        self.limit = limit.total_seconds()
        self.stop = stop
        self.delay = 0.5
        self.away = 0.0

    def reset(self) -> None:
        self.delay, self.away = 0.5, 0.0

    def wait(self, exc: StoreError) -> None:
        if self.away >= self.limit or self.stop.is_set():
            raise exc
        log.warning("database unavailable (%s); retrying in %.1fs", exc, self.delay)
        self.stop.wait(self.delay)
        self.away += self.delay
        self.delay = min(self.delay * 2, 30.0)


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
        max_outage: timedelta = timedelta(minutes=5),
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
        self.max_outage = max_outage

    def claim_size(self, remaining: int | None) -> int:
        """Never claim more than the pool can start before the lease could expire."""
        size = self.batch_size
        if self.limiter is not None:
            startable = int(self.limiter.rate * self.lease_for.total_seconds() / 2)
            size = min(size, max(1, startable))
        if remaining is not None:
            size = min(size, remaining)
        return size

    _pace_lock = threading.Lock()
    _doubt_streak = 0  # attempts in doubt in a row: the processor looks unreachable
    DOUBT_LIMIT = 3

    def pace(self, seconds: float) -> None:
        """The processor asked the run to slow down (429): no attempt starts and no job is
        claimed before `seconds` from now. A runner without a limiter gets one."""
        with self._pace_lock:
            if self.limiter is None:
                self.limiter = RateLimiter(float(getattr(self.processor, "rate", None) or 1000))
        self.limiter.pause(seconds)

    def _may_start(self, *, pace: bool = True) -> bool:
        if self.stop.is_set() or self._doubt_streak >= self.DOUBT_LIMIT:
            return False
        if pace and self.limiter is not None:
            return self.limiter.acquire(self.stop)
        return True

    def _paced_attempt(self, claimed: Claimed) -> Finish | Unsettled | Claimed:
        """In a pool thread: wait for the limiter right before the request, so the pace the
        processor sees is the pace granted; the claim itself comes back if a stop came first."""
        if self.limiter is not None and not self.limiter.acquire(self.stop):
            return claimed
        return self._attempt(claimed)

    def _attempt(self, claimed: Claimed) -> Finish | Unsettled:
        claimed = with_history(self.store, self.processor, claimed)
        try:
            result = self.processor.attempt(claimed.job, claimed.idempotency_key)
        except AttemptInDoubt as exc:
            return Unsettled(claimed, exc.error_code, exc.message)
        except ProcessorError:
            # Refused before anything was sent (bad credentials): give the job back untouched,
            # no attempt counted. A re-send of an earlier attempt keeps its row (and the age of
            # its key) and waits for the rescue instead.
            if claimed.sent_before is None:
                self.store.release([claimed], self.clock())
            raise
        if result.retry_after:
            self.pace(result.retry_after)
        now = self.clock()
        decision = with_notification(decide(self.policy, claimed, result, now), claimed, result)
        return Finish(claimed, result, decision, now)

    def _unsettled(self, item: Unsettled, report: RunReport, on_result: OnResult | None) -> None:
        self._doubt_streak += 1
        report.counts["in_doubt"] += 1
        claimed = item.claimed
        log.warning(
            "outcome unknown (%s); the same idempotency key is sent again once the lease lapses",
            item.message,
            extra={
                "transaction_id": claimed.job.transaction_id,
                "attempt": claimed.attempt_number,
                "error_code": item.error_code,
                "outcome": "in_doubt",
            },
        )
        if on_result is not None:
            on_result(
                JobResult(
                    claimed.job.transaction_id,
                    claimed.job.id,
                    claimed.attempt_number,
                    "in_doubt",
                    JobState.RUNNING.value,
                    item.error_code,
                    reason=item.message,
                )
            )

    def _record(
        self, items: list[Finish | Unsettled], report: RunReport, on_result: OnResult | None
    ) -> None:
        finishes = []
        for item in items:
            if isinstance(item, Unsettled):
                self._unsettled(item, report, on_result)
            else:
                self._doubt_streak = 0
                finishes.append(item)
        if not finishes:
            return
        try:
            applied = self.store.finish(finishes)
        except StoreError as exc:
            report.counts["unrecorded"] += len(finishes)
            log.error(
                "could not record %d outcome(s): %s; their leases will expire and the rescue "
                "will re-send them with the same idempotency keys",
                len(finishes),
                exc,
            )
            return
        for finish, ok in zip(finishes, applied, strict=True):
            self._report(finish, ok, report, on_result)

    def _release(self, unstarted: list[Claimed], report: RunReport) -> None:
        if unstarted:
            try:
                report.counts["released"] += self.store.release(unstarted, self.clock())
            except StoreError as exc:  # their leases expire instead
                log.error("could not release %d job(s): %s", len(unstarted), exc)

    def _process(self, batch: list[Claimed], report: RunReport, on_result: OnResult | None) -> None:
        with Heartbeat(self.store, batch, self.lease_for, self.clock):
            if self.concurrency == 1:
                self._process_in_order(batch, report, on_result)
            else:
                self._process_in_pool(batch, report, on_result)

    def _process_in_order(
        self, batch: list[Claimed], report: RunReport, on_result: OnResult | None
    ) -> None:
        finishes: list[Finish | Unsettled] = []
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
        in_flight: set[Future[Finish | Unsettled | Claimed]] = set()
        failure: BaseException | None = None

        def collect(done: set[Future[Finish | Unsettled | Claimed]]) -> None:
            nonlocal failure
            finishes: list[Finish | Unsettled] = []
            unstarted: list[Claimed] = []
            for future in done:
                try:
                    item = future.result()
                except BaseException as exc:  # stays leased; rescued and re-sent with its key
                    failure = failure or exc
                    continue
                if isinstance(item, Claimed):
                    unstarted.append(item)
                else:
                    finishes.append(item)
            self._record(finishes, report, on_result)
            self._release(unstarted, report)

        try:
            for index, claimed in enumerate(batch):
                while len(in_flight) >= self.concurrency:
                    done, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
                    collect(done)
                if failure is not None or not self._may_start(pace=False):
                    self._release(batch[index:], report)
                    break
                in_flight.add(pool.submit(self._paced_attempt, claimed))
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
        done = 0
        outage = Backoff(self.max_outage, self.stop)
        rescued = False
        self._doubt_streak = 0
        while (limit is None or done < limit) and not self.stop.is_set():
            if self._doubt_streak >= self.DOUBT_LIMIT:
                log.warning(
                    "%d attempts in a row had no answer; ending the run", self._doubt_streak
                )
                break
            if self.limiter is not None and not self.limiter.wait_free(self.stop):
                break  # paced (or asked to slow down): no claim before the limiter allows
            try:
                if not rescued:
                    report.rescued = self.store.rescue(self.clock())
                    rescued = True
                    check_customer_actions(self, report, on_result)
                self._abandon(report, on_result)
                size = self.claim_size(None if limit is None else limit - done)
                batch = self.store.claim(self.clock(), size, self.lease_for)
                outage.reset()
            except StoreError as exc:
                # The database restarted or our connection was killed: wait and reconnect
                # (the pool checks connections before use). Leases of a batch whose outcomes
                # could not be written expire, and the rescue re-sends with the same keys.
                outage.wait(exc)
                continue
            if not batch:
                break
            self._process(batch, report, on_result)
            done += len(batch)
            if on_batch is not None:
                on_batch(len(batch))
        return report

    def attempt_claimed(self, claimed: Claimed, on_result: OnResult | None = None) -> RunReport:
        """Attempt one job claimed elsewhere (the SQS worker claims the job a message names):
        the same attempt, decision and lease-fenced finish as run_due, the lease kept alive
        meanwhile. No doubt streak carries over: the queue paces re-sends of unanswered ones."""
        report = RunReport()
        self._doubt_streak = 0
        self._process([claimed], report, on_result)
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
        if job.state is JobState.AWAITING_PAYER:
            raise Refused(
                f"the customer has checkout session {job.action.ref if job.action else '?'} "
                f"open for {transaction_id}; run-due checks it"
            )
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
