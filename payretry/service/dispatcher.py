"""SQS mode's producer: due retries go to the queue instead of being attempted here.

A retry due within 15 minutes is sent at once with `DelaySeconds` (never above 900); a later one
stays in the database until a `run-due` or `serve` pass finds it within 15 minutes of due. Each
job is marked dispatched in the transaction that records the intent to send; the message id is
recorded once the queue took it. The rescue sweep sends again an intent left unconfirmed (a crash
between the two): duplicates are harmless, the worker acts only on the job's current attempt.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

from payretry.domain.dispatch import (
    HORIZON,
    Dispatch,
    DispatchStore,
    Outgoing,
    RetryQueue,
    delay_seconds,
)
from payretry.domain.models import JobState
from payretry.errors import StoreError
from payretry.service.checkout import check_customer_actions
from payretry.service.runner import Backoff, Clock, JobResult, OnResult, Runner, RunReport

log = logging.getLogger("payretry")


class Dispatcher:
    def __init__(
        self,
        store: DispatchStore,
        queue: RetryQueue,
        *,
        clock: Clock,
        batch_size: int = 200,
        resend_after: timedelta = timedelta(minutes=1),
    ) -> None:
        self.store = store
        self.queue = queue
        self.clock = clock
        self.batch_size = batch_size
        self.resend_after = resend_after

    def dispatch(
        self,
        *,
        job_ids: Sequence[str] | None = None,
        limit: int | None = None,
        on_result: OnResult | None = None,
        on_batch: Callable[[int], None] | None = None,
        counts: Counter[str] | None = None,
    ) -> Counter[str]:
        """Send every retry due within 15 minutes that has no message yet (only `job_ids`, when
        given); first, unless `job_ids` is given, the rescue: intents never confirmed."""
        counts = Counter() if counts is None else counts
        if job_ids is None:
            while True:
                now = self.clock()
                lost = self.store.unsent_dispatches(now - self.resend_after, now, self.batch_size)
                if not lost:
                    break
                log.warning("%d dispatch(es) never confirmed; sending them again", len(lost))
                counts["resent"] += self._send(lost, on_result)
        elif not job_ids:
            return counts
        while limit is None or counts["dispatched"] < limit:
            now = self.clock()
            left = None if limit is None else limit - counts["dispatched"]
            size = self.batch_size if left is None else min(self.batch_size, left)
            batch = self.store.mark_dispatch(now, now + HORIZON, size, job_ids=job_ids)
            if not batch:
                break
            counts["dispatched"] += self._send(batch, on_result)
            if on_batch is not None:
                on_batch(len(batch))
            if job_ids is not None:
                break
        return counts

    def _send(self, dispatches: Sequence[Dispatch], on_result: OnResult | None) -> int:
        now = self.clock()
        outgoing = [Outgoing(d.message(), delay_seconds(d.next_retry_at, now)) for d in dispatches]
        ids = self.queue.send(outgoing)  # raises QueueError: all left to the rescue sweep
        triples = list(zip(dispatches, ids, outgoing, strict=True))
        sent = [(d, mid) for d, mid, _ in triples if mid]
        if len(sent) < len(dispatches):
            log.error(
                "%d of %d message(s) were refused by %s; the rescue sweep sends them again",
                len(dispatches) - len(sent),
                len(dispatches),
                self.queue.name,
            )
        try:
            self.store.confirm_dispatch(sent)
        except StoreError as exc:  # sent but unconfirmed: re-sent later, a harmless duplicate
            log.warning("could not record %d sent message id(s): %s", len(sent), exc)
        for d, mid, item in triples:
            if not mid:
                continue
            extra = {
                "transaction_id": d.transaction_id,
                "attempt": d.attempt_number,
                "outcome": "dispatched",
            }
            log.info("sent to %s, delay %ds", self.queue.name, item.delay_seconds, extra=extra)
            if on_result is not None:
                on_result(
                    JobResult(
                        d.transaction_id,
                        d.job_id,
                        d.attempt_number,
                        "dispatched",
                        JobState.SCHEDULED.value,
                        next_retry_at=d.next_retry_at,
                        reason=f"sent to {self.queue.name} with DelaySeconds={item.delay_seconds}",
                    )
                )
        return len(sent)


class DispatchReport(RunReport):
    def as_dict(self) -> dict[str, int]:
        return {
            **super().as_dict(),
            "dispatched": self.counts["dispatched"],
            "resent": self.counts["resent"],
        }


class DispatchRunner(Runner):
    """`run-due` and `serve` in sqs mode: rescue expired leases, settle customer actions, close
    lapsed windows, then dispatch what is due (instead of attempting it here)."""

    def __init__(self, dispatcher: Dispatcher, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.dispatcher = dispatcher

    def run_due(
        self,
        *,
        limit: int | None = None,
        on_result: OnResult | None = None,
        on_batch: Callable[[int], None] | None = None,
    ) -> RunReport:
        report = DispatchReport()
        outage = Backoff(self.max_outage, self.stop)
        while not self.stop.is_set():
            try:
                report.rescued += self.store.rescue(self.clock())
                check_customer_actions(self, report, on_result)
                self._abandon(report, on_result)
                self.dispatcher.dispatch(
                    limit=limit, on_result=on_result, on_batch=on_batch, counts=report.counts
                )
                break
            except StoreError as exc:
                outage.wait(exc)
        return report


def dispatch_soon(dispatcher: Dispatcher, results: Sequence[JobResult]) -> int:
    """After attempts: the retries they scheduled within 15 minutes go to the queue now."""
    now = dispatcher.clock()
    soon = [
        r.job_id
        for r in results
        if r.state == JobState.SCHEDULED.value
        and r.next_retry_at is not None
        and r.next_retry_at <= now + HORIZON
    ]
    if not soon:
        return 0
    return dispatcher.dispatch(job_ids=soon)["dispatched"]
