"""Attempting a claimed batch: each job through the processor with its attempt's key, each
outcome decided by the policy and recorded fenced by the lease, the leases kept alive meanwhile.
Two ways to go through a batch: in order (one thread), or in a bounded pool of threads."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta

from payretry.domain.card_checks import after_outcome, settle
from payretry.domain.changes import Claimed, Finish, Unsettled
from payretry.domain.policy import RetryPolicy
from payretry.domain.ports import Processor, Store
from payretry.domain.results import AttemptInDoubt
from payretry.errors import ProcessorError, StoreError
from payretry.pacing import RateLimiter
from payretry.service.heartbeat import Heartbeat
from payretry.service.pool import Latency, in_pool, timed
from payretry.service.reporting import Reporter

log = logging.getLogger("payretry")

Clock = Callable[[], datetime]
DOUBT_LIMIT = 3  # attempts in doubt in a row: the processor looks unreachable
_UNLIMITED = 1000.0  # requests/s assumed for a processor that states no rate of its own


class Execution:
    def __init__(
        self,
        store: Store,
        policy: RetryPolicy,
        processor: Processor,
        *,
        clock: Clock,
        lease_for: timedelta,
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
        self.concurrency = max(1, concurrency)
        self.limiter = limiter
        self.stop = stop or threading.Event()
        self.grace = grace
        self.doubt_streak = 0  # attempts in doubt in a row
        self._pace_lock = threading.Lock()
        self.latency = Latency()  # how long attempts take: whether a pool would help

    @property
    def unreachable(self) -> bool:
        return self.doubt_streak >= DOUBT_LIMIT

    def pace(self, seconds: float) -> None:
        """The processor asked the run to slow down (429): no attempt starts and no job is
        claimed before `seconds` from now. A run without a limiter gets one, at the
        processor's own rate."""
        with self._pace_lock:
            if self.limiter is None:
                self.limiter = RateLimiter(self.processor.rate or _UNLIMITED)
        self.limiter.pause(seconds)

    def may_start(self, *, pace: bool = True) -> bool:
        if self.stop.is_set() or self.unreachable:
            return False
        if pace and self.limiter is not None:
            return self.limiter.acquire(self.stop)
        return True

    # -- one attempt ---------------------------------------------------------------------------

    def _with_history(self, claimed: Claimed) -> Claimed:
        """The claim returns jobs without their attempts (fast for the simulated processor); a
        processor that resolves earlier unsettled attempts gets them, one indexed read per job."""
        if not self.processor.needs_history:
            return claimed
        job = self.store.get(claimed.job.id)
        if job is None:  # pragma: no cover - the job is leased to us
            return claimed
        return replace(claimed, job=replace(job, lease_token=claimed.lease_token))

    def attempt(self, claimed: Claimed) -> Finish | Unsettled:
        claimed = self._with_history(claimed)
        sent_at = self.clock()
        try:
            result = self.processor.attempt(claimed.request())
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
        card, settled = claimed.card, None
        if card is not None:  # what the outcome writes to the card's ledger
            settled = settle(claimed.job, claimed.attempt_number, card, result, now)
            assert settled is not None
            # A failure's next retry is checked on the card's ledger as claimed, this
            # attempt's outcome in it; nothing else asks the card.
            card = after_outcome(card, settled) if not result.succeeded else None
        decision = self.policy.decide(claimed.job, claimed.attempt_number, result, now, card)
        return Finish(
            claimed,
            result,
            decision,
            now,
            settled,
            processor=self.processor.name,
            sent_at=sent_at,
        )

    # -- recording -----------------------------------------------------------------------------

    def ended(self, item: Finish | Unsettled) -> Finish | Unsettled:
        """Note an attempt as it ends (on the batch's own thread): the streak of attempts in
        doubt decides, before the next one starts, whether the processor looks unreachable."""
        self.doubt_streak = self.doubt_streak + 1 if isinstance(item, Unsettled) else 0
        return item

    def record(self, items: list[Finish | Unsettled], reporter: Reporter) -> None:
        finishes = []
        for item in items:
            if isinstance(item, Unsettled):
                reporter.in_doubt(item)
            else:
                finishes.append(item)
        if not finishes:
            return
        try:
            applied = self.store.finish(finishes)
        except StoreError as exc:
            reporter.report.counts["unrecorded"] += len(finishes)
            log.error(
                "could not record %d outcome(s): %s; their leases will expire and the rescue "
                "will re-send them with the same idempotency keys",
                len(finishes),
                exc,
            )
            return
        for finish, ok in zip(finishes, applied, strict=True):
            reporter.finished(finish, ok)

    def release(self, unstarted: list[Claimed], reporter: Reporter) -> None:
        if unstarted:
            try:
                reporter.report.counts["released"] += self.store.release(unstarted, self.clock())
            except StoreError as exc:  # their leases expire instead
                log.error("could not release %d job(s): %s", len(unstarted), exc)

    # -- a batch -------------------------------------------------------------------------------

    def process(self, batch: list[Claimed], reporter: Reporter) -> None:
        with Heartbeat(self.store, batch, self.lease_for, self.clock):
            # A pool only helps while the processor waits; see service/pool.py.
            if self.concurrency == 1 or self.latency.quick:
                self._in_order(batch, reporter)
            elif self.latency.mean is None and len(batch) > 1:
                self._measure_first(batch, reporter)
            else:
                in_pool(self, batch, reporter)
        self.latency.close_batch()

    def _measure_first(self, batch: list[Claimed], reporter: Reporter) -> None:
        """The first batch of a run, while how long an attempt takes is unknown: its first
        attempt alone, in order (one attempt's wait, once a run), tells whether the rest go
        in order or to the pool."""
        try:
            self._in_order(batch[:1], reporter)
        except BaseException:
            self.release(batch[1:], reporter)  # the first stays leased, as in _in_order
            raise
        self.latency.close_batch()
        if self.latency.quick:
            self._in_order(batch[1:], reporter)
        else:
            in_pool(self, batch[1:], reporter)

    def _in_order(self, batch: list[Claimed], reporter: Reporter) -> None:
        finishes: list[Finish | Unsettled] = []
        try:
            for index, claimed in enumerate(batch):
                if not self.may_start():
                    self.release(batch[index:], reporter)
                    break
                try:
                    item, seconds = timed(self.attempt, claimed)
                    self.latency.add(seconds)
                    finishes.append(self.ended(item))
                except BaseException:
                    # Not known whether it was sent: this one stays leased and is rescued, then
                    # re-sent with its key, once the lease expires. The rest go back now.
                    self.release(batch[index + 1 :], reporter)
                    raise
        finally:
            self.record(finishes, reporter)
