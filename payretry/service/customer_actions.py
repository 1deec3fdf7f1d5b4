"""Jobs waiting on the customer: each pass checks their Checkout Sessions. Completed ->
succeeded; expired -> a failed attempt, then the policy decides (the next retry or the end);
still open -> nothing changes."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime

from payretry.domain.changes import Settlement
from payretry.domain.policy import RetryPolicy
from payretry.domain.ports import CustomerActions, Store
from payretry.domain.results import AttemptInDoubt
from payretry.service.reporting import Reporter

log = logging.getLogger("payretry")


class CustomerActionSettler:
    def __init__(
        self,
        store: Store,
        policy: RetryPolicy,
        actions: CustomerActions,
        *,
        clock: Callable[[], datetime],
        stop: threading.Event,
        batch_size: int = 200,
    ) -> None:
        self.store = store
        self.policy = policy
        self.actions = actions
        self.clock = clock
        self.stop = stop
        self.batch_size = batch_size

    def settle(self, reporter: Reporter) -> int:
        """Check every waiting session once; returns how many were settled here."""
        settled, after = 0, 0
        while not self.stop.is_set():
            jobs = self.store.awaiting(after_seq=after, limit=self.batch_size)
            if not jobs:
                break
            after = jobs[-1].seq
            settlements = []
            for job in jobs:
                try:
                    result = self.actions.check_action(job)
                except AttemptInDoubt as exc:  # no answer: look again next pass
                    log.warning(
                        "could not check the checkout session: %s",
                        exc.message,
                        extra={"transaction_id": job.transaction_id},
                    )
                    continue
                if result is None:
                    continue
                now = self.clock()
                decision = self.policy.decide(job, job.attempt_count, result, now)
                settlements.append(Settlement(job, result, decision, now))
            applied = self.store.settle_awaiting(settlements) if settlements else []
            for settlement, ok in zip(settlements, applied, strict=True):
                if ok:  # else another runner recorded it first
                    settled += 1
                    reporter.settled(settlement)
        return settled
