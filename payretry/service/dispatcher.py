"""SQS mode's producer: due retries go to the queue instead of being attempted here.

A retry due within 15 minutes is sent at once with `DelaySeconds` (never above 900); a later one
stays in the database until a `run-due` or `serve` pass finds it within 15 minutes of due. Each
job is marked dispatched in the transaction that records the intent to send; the message id is
recorded once the queue took it. The rescue sweep sends again an intent left unconfirmed (a crash
between the two): duplicates are harmless, the worker acts only on the job's current attempt.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from payretry.domain.dispatch import (
    HORIZON,
    Dispatch,
    DispatchStore,
    Outgoing,
    RetryQueue,
    delay_seconds,
)
from payretry.domain.durations import format_duration
from payretry.domain.models import JobState
from payretry.domain.outcomes import DISPATCHED, JobResult, OnResult, RunReport
from payretry.errors import QueueError, StoreError
from payretry.service.duepass import DueSteps
from payretry.service.reporting import Reporter
from payretry.service.runner import RECONNECT, reconnect

log = logging.getLogger("payretry")
Clock = Callable[[], datetime]


class Dispatcher:
    def __init__(
        self,
        store: DispatchStore,
        queue: RetryQueue,
        *,
        clock: Clock,
        batch_size: int = 200,
        resend_after: timedelta = timedelta(minutes=1),
        lost_after: timedelta = timedelta(minutes=2),
    ) -> None:
        self.store = store
        self.queue = queue
        self.clock = clock
        self.batch_size = batch_size
        self.resend_after = resend_after
        self.lost_after = lost_after

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
        given); first, unless `job_ids` is given, the two sweeps: intents never confirmed (a
        crash between marking and sending), and messages lost outside payretry (a job still
        waiting `lost_after` past its due time, its message never taken: a purged queue, say).
        A duplicate of a message that was not lost is harmless: the worker acts only on the
        job's current attempt."""
        counts = Counter() if counts is None else counts
        reporter = Reporter(RunReport(counts), on_result)
        if job_ids is None:
            while True:
                now = self.clock()
                lost = self.store.unsent_dispatches(now - self.resend_after, now, self.batch_size)
                if not lost:
                    break
                log.warning("%d dispatch(es) never confirmed; sending them again", len(lost))
                counts["resent"] += self._send(lost, reporter)
            while True:
                now = self.clock()
                lost = self.store.lost_dispatches(now - self.lost_after, now, self.batch_size)
                if not lost:
                    break
                log.warning(
                    "%d dispatched job(s) still wait %s past due: their message was lost; "
                    "sending it again",
                    len(lost),
                    format_duration(self.lost_after),
                )
                counts["resent"] += self._send(lost, reporter)
        elif not job_ids:
            return counts
        while limit is None or counts[DISPATCHED] < limit:
            now = self.clock()
            left = None if limit is None else limit - counts[DISPATCHED]
            size = self.batch_size if left is None else min(self.batch_size, left)
            batch = self.store.mark_dispatch(now, now + HORIZON, size, job_ids=job_ids)
            if not batch:
                break
            counts[DISPATCHED] += self._send(batch, reporter)
            if on_batch is not None:
                on_batch(len(batch))
            if job_ids is not None:
                break
        return counts

    def _send(self, dispatches: Sequence[Dispatch], reporter: Reporter) -> int:
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
            if mid:
                result = JobResult.of_dispatch(d, self.queue.name, item.delay_seconds)
                reporter.dispatched(result, item.delay_seconds, self.queue.name)
        return len(sent)

    def dispatch_new(self, job_ids: Sequence[str] | None = None) -> int:
        """After a queue: retries due within 15 minutes go to the queue now (the others wait
        for run-due or serve). A queue that does not answer is no failure: the jobs are
        stored, and the next pass sends them. Returns how many were sent."""
        try:
            return self.dispatch(job_ids=job_ids)[DISPATCHED]
        except QueueError as exc:
            log.warning("queued, but not sent to SQS now (%s); run-due or serve sends it", exc)
            return 0


class DispatchPass:
    """`run-due` and `serve` in sqs mode: the same first steps as the runner (rescue expired
    leases, settle customer actions, close lapsed windows), then what is due goes to the queue
    instead of being attempted here."""

    def __init__(
        self,
        steps: DueSteps,
        dispatcher: Dispatcher,
        *,
        stop: threading.Event,
        max_outage: timedelta = timedelta(minutes=5),
    ) -> None:
        self.steps = steps
        self.dispatcher = dispatcher
        self.stop = stop
        self.max_outage = max_outage

    def run_due(
        self,
        *,
        limit: int | None = None,
        on_result: OnResult | None = None,
        on_batch: Callable[[int], None] | None = None,
    ) -> RunReport:
        reporter = Reporter(RunReport(dispatching=True), on_result)
        outage = RECONNECT.patience(self.stop, self.max_outage.total_seconds())
        while not self.stop.is_set():
            try:
                self.steps.prepare(reporter)
                self.dispatcher.dispatch(
                    limit=limit,
                    on_result=on_result,
                    on_batch=on_batch,
                    counts=reporter.report.counts,
                )
                break
            except StoreError as exc:
                reconnect(outage, exc)
        return reporter.report


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
    return dispatcher.dispatch(job_ids=soon)[DISPATCHED]
