"""run_due: rescue expired leases, settle customer actions, close lapsed windows, then claim due
jobs in priority order and attempt each through the processor with its attempt's idempotency
key, each outcome recorded fenced by the lease."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from payretry.backoff import Backoff, Patience
from payretry.domain.changes import Claimed
from payretry.domain.outcomes import OnResult, RunReport
from payretry.domain.policy import RetryPolicy
from payretry.domain.ports import CustomerActions, Processor, Store
from payretry.errors import StoreError
from payretry.pacing import RateLimiter
from payretry.service.customer_actions import CustomerActionSettler
from payretry.service.duepass import DueSteps
from payretry.service.execution import Execution
from payretry.service.reporting import Reporter

log = logging.getLogger("payretry")

Clock = Callable[[], datetime]
# The database restarted or our connection was killed: wait and reconnect (the pool checks
# connections before use), 0.5 s doubling to 30 s, for at most `max_outage`.
RECONNECT = Backoff(first=0.5, factor=2.0, cap=30.0)


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
        concurrency: int = 1,
        limiter: RateLimiter | None = None,
        stop: threading.Event | None = None,
        grace: timedelta = timedelta(seconds=30),
        max_outage: timedelta = timedelta(minutes=5),
        customer_actions: CustomerActions | None = None,
        max_rescues: int = 3,
    ) -> None:
        self.store = store
        self.policy = policy
        self.processor = processor
        self.clock = clock
        self.lease_for = lease_for
        self.batch_size = batch_size
        self.stop = stop or threading.Event()
        self.max_outage = max_outage
        self.execution = Execution(
            store,
            policy,
            processor,
            clock=clock,
            lease_for=lease_for,
            concurrency=concurrency,
            limiter=limiter,
            stop=self.stop,
            grace=grace,
        )
        settler = None
        if customer_actions is not None:
            settler = CustomerActionSettler(
                store, policy, customer_actions, clock=clock, stop=self.stop, batch_size=batch_size
            )
        self.steps = DueSteps(store, clock, settler, max_rescues=max_rescues)

    @property
    def concurrency(self) -> int:
        return self.execution.concurrency

    @property
    def limiter(self) -> RateLimiter | None:
        return self.execution.limiter

    def claim_size(self, remaining: int | None) -> int:
        """Never claim more than the pool can start before the lease could expire."""
        size = self.batch_size
        if self.limiter is not None:
            startable = int(self.limiter.rate * self.lease_for.total_seconds() / 2)
            size = min(size, max(1, startable))
        if remaining is not None:
            size = min(size, remaining)
        return size

    def run_due(
        self,
        *,
        limit: int | None = None,
        on_result: OnResult | None = None,
        on_batch: Callable[[int], None] | None = None,
    ) -> RunReport:
        """Process due jobs in priority order until none is due or `limit` is reached."""
        reporter = Reporter(RunReport(), on_result)
        execution = self.execution
        outage = RECONNECT.patience(self.stop, self.max_outage.total_seconds())
        done = 0
        prepared = False
        execution.doubt_streak = 0
        while (limit is None or done < limit) and not self.stop.is_set():
            if execution.unreachable:
                log.warning(
                    "%d attempts in a row had no answer; ending the run", execution.doubt_streak
                )
                break
            if self.limiter is not None and not self.limiter.wait_free(self.stop):
                break  # paced (or asked to slow down): no claim before the limiter allows
            try:
                if not prepared:
                    self.steps.rescue(reporter)
                    self.steps.settle(reporter)
                    prepared = True
                self.steps.abandon(reporter)
                size = self.claim_size(None if limit is None else limit - done)
                batch = self.store.claim(
                    self.clock(), size, self.lease_for, rules=self.policy.network
                )
                outage.reset()
            except StoreError as exc:
                # Leases of a batch whose outcomes could not be written expire, and the
                # rescue re-sends them with the same keys.
                reconnect(outage, exc)
                continue
            for held in batch.held:  # postponed or blocked by a card-network rule, not sent
                reporter.held(held)
            if not batch:
                if batch.held:
                    continue  # they are no longer due: claim the next ones
                break
            execution.process(batch, reporter)
            done += len(batch)
            if on_batch is not None:
                on_batch(len(batch))
        return reporter.report

    def attempt_claimed(self, claimed: Claimed, on_result: OnResult | None = None) -> RunReport:
        """Attempt one job claimed elsewhere (the SQS worker claims the job a message names):
        the same attempt, decision and lease-fenced finish as run_due, the lease kept alive
        meanwhile. No doubt streak carries over: the queue paces re-sends of unanswered ones."""
        reporter = Reporter(RunReport(), on_result)
        self.execution.doubt_streak = 0
        self.execution.process([claimed], reporter)
        return reporter.report


def reconnect(patience: Patience, exc: StoreError) -> None:
    """Wait before the next try at the database; re-raise `exc` once the outage has lasted
    too long or a stop was requested (a stop during the wait ends it: the pass then ends)."""
    if patience.spent:
        raise exc
    log.warning("database unavailable (%s); retrying in %.1fs", exc, patience.next_delay)
    patience.wait()
