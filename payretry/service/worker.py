"""`payretry worker`: consume the retry queue.

Each message names one attempt of one job. The worker claims that job in the database under the
usual lease, attempts it through the runner (the same attempt, decision and fenced finish as
`run-due`), records the outcome, dispatches a retry due within 15 minutes, and only then deletes
the message. SQS delivers at least once, so the database decides:

- job final, or already past that attempt (a duplicate, a stale message): deleted, no attempt;
- job leased by someone else: hidden until that lease would lapse, then looked at again;
- job not yet due: hidden until it is (or, if far off, deleted and dispatched again when due);
- unreadable message, unknown job, processor refused: left to come back, and after
  `maxReceiveCount` receives SQS moves it to the dead-letter queue.

A message's visibility is extended while its attempt runs. A set `stop` ends polling; attempts in
flight finish (within the grace period) and messages received but not started are given back.
"""

from __future__ import annotations

import logging
import math
import threading
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import timedelta
from typing import Protocol

from payretry.backoff import Backoff
from payretry.domain.changes import Claimed
from payretry.domain.dispatch import (
    MAX_DELAY_SECONDS,
    BadMessage,
    DispatchStore,
    Received,
    RetryMessage,
    RetryQueue,
)
from payretry.domain.models import Job, JobState
from payretry.domain.outcomes import IN_DOUBT, JobResult
from payretry.domain.ports import Store
from payretry.errors import PayretryError, QueueError
from payretry.service.dispatcher import Clock, Dispatcher, dispatch_soon
from payretry.service.runner import Runner
from payretry.ticker import Ticker

log = logging.getLogger("payretry")

# A queue that does not answer: poll again after 2 s, doubling to 30 s while it stays away.
POLL_AGAIN = Backoff(first=2.0, factor=2.0, cap=30.0)


class WorkerStore(Store, DispatchStore, Protocol):
    pass


class VisibilityKeeper(Ticker):
    """Every third of the visibility timeout, extend the messages whose attempts still run."""

    def __init__(self, queue: RetryQueue, seconds: int) -> None:
        super().__init__(max(seconds / 3, 0.2), "payretry-visibility")
        self.queue = queue
        self.seconds = seconds
        self.receipts: set[str] = set()
        self.lock = threading.Lock()

    def add(self, receipt: str) -> None:
        with self.lock:
            self.receipts.add(receipt)

    def discard(self, receipt: str) -> None:
        """Stop extending; the caller then deletes or hides it (under no later extension)."""
        with self.lock:
            self.receipts.discard(receipt)

    def tick(self) -> None:
        with self.lock:
            receipts = sorted(self.receipts)
            if not receipts:
                return
            try:
                self.queue.hide(receipts, self.seconds)
            except QueueError as exc:
                log.warning("could not extend message visibility: %s", exc)


class Deleter(Ticker):
    """Acknowledged messages, deleted in batches of up to ten every 50 ms (one request where
    there would be ten). A process that dies first leaves them to come back: they are dropped
    then, their attempts being recorded already."""

    def __init__(self, queue: RetryQueue, interval: float = 0.05) -> None:
        super().__init__(interval, "payretry-delete")
        self.queue = queue
        self.pending: list[str] = []
        self.lock = threading.Lock()

    def add(self, receipt: str) -> None:
        with self.lock:
            self.pending.append(receipt)

    def flush(self) -> None:
        with self.lock:
            receipts, self.pending = self.pending, []
        if not receipts:
            return
        try:
            refused = self.queue.delete_many(receipts)
        except QueueError as exc:
            log.warning("could not delete %d message(s): %s; they come back", len(receipts), exc)
            return
        if refused:
            log.warning("%d message(s) could not be deleted; they come back", refused)

    def tick(self) -> None:
        self.flush()

    def closing(self) -> None:
        self.flush()


class Worker:
    def __init__(
        self,
        store: WorkerStore,
        runner: Runner,
        queue: RetryQueue,
        dispatcher: Dispatcher,
        *,
        clock: Clock,
        concurrency: int = 1,
        wait_time: timedelta = timedelta(seconds=20),
        visibility: timedelta = timedelta(minutes=1),
        failure_visibility: timedelta = timedelta(seconds=30),
        grace: timedelta = timedelta(seconds=30),
        stop: threading.Event | None = None,
    ) -> None:
        self.store = store
        self.runner = runner
        self.queue = queue
        self.dispatcher = dispatcher
        self.clock = clock
        self.concurrency = max(1, concurrency)
        self.wait_seconds = int(wait_time.total_seconds())
        self.visibility = max(1, math.ceil(visibility.total_seconds()))
        self.failure_visibility = int(failure_visibility.total_seconds())
        self.grace = grace
        self.stop = stop or runner.stop
        self.counts: Counter[str] = Counter()
        self._counts_lock = threading.Lock()
        self.keeper = VisibilityKeeper(queue, self.visibility)
        self.deleter = Deleter(queue)

    # -- the loop ------------------------------------------------------------------------------

    def run(self) -> Counter[str]:
        """Poll until `stop` is set; then finish what is in flight. Returns what happened to
        each message, counted by verdict.

        Up to `concurrency` messages are handled at once and as many again wait their turn
        (at most ten), so each receive asks for a batch rather than one message at a time;
        waiting ones have their visibility extended like running ones."""
        pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="payretry-worker")
        held = self.concurrency + min(10, self.concurrency)
        in_flight: dict[Future[None], Received] = {}
        outage = POLL_AGAIN.patience(self.stop)
        with self.keeper, self.deleter:
            try:
                while not self.stop.is_set():
                    in_flight = {f: m for f, m in in_flight.items() if not f.done()}
                    room = held - len(in_flight)
                    if room <= 0:
                        wait(in_flight, timeout=1, return_when=FIRST_COMPLETED)
                        continue
                    try:
                        messages = self.queue.receive(
                            max_messages=min(10, room),
                            wait_seconds=self.wait_seconds,
                            visibility=self.visibility,
                        )
                    except QueueError as exc:
                        log.error("%s; polling again in %.0fs", exc, outage.next_delay)
                        outage.wait()
                        continue
                    outage.reset()
                    if self.stop.is_set():  # received while stopping: give them back
                        self._give_back(messages)
                        break
                    for message in messages:
                        self.keeper.add(message.receipt)
                        in_flight[pool.submit(self._handle_logged, message)] = message
            finally:
                # Not started yet: given back at once for another worker to take.
                unstarted = [m for f, m in in_flight.items() if f.cancel()]
                for message in unstarted:
                    self.keeper.discard(message.receipt)
                self._give_back(unstarted)
                running = [f for f in in_flight if not f.cancelled()]
                _, pending = wait(running, timeout=self.grace.total_seconds())
                if pending:
                    log.warning(
                        "%d attempt(s) still running after the grace period; their leases "
                        "lapse and their messages come back",
                        len(pending),
                    )
                pool.shutdown(wait=not pending, cancel_futures=True)
        return self.counts

    def _give_back(self, messages: list[Received]) -> None:
        if messages:
            try:
                self.queue.hide([m.receipt for m in messages], 0)
            except QueueError as exc:
                log.warning("could not give back %d message(s): %s", len(messages), exc)

    def _count(self, verdict: str) -> None:
        with self._counts_lock:
            self.counts[verdict] += 1

    def _handle_logged(self, message: Received) -> None:
        try:
            verdict = self.handle(message)
        except Exception as exc:  # the message comes back after the failure visibility
            log.error("message %s: %s: %s", message.message_id, type(exc).__name__, exc)
            self._later(message, self.failure_visibility)
            verdict = "error"
        self._count(verdict)

    # -- one message ---------------------------------------------------------------------------

    def handle(self, message: Received) -> str:
        """Act on one message; returns the verdict (an outcome, or why nothing was attempted)."""
        try:
            retry = RetryMessage.parse(message.body)
        except BadMessage as exc:
            log.error(
                "message %s is unreadable (%s), receive %d; it goes to the dead-letter queue "
                "after maxReceiveCount receives",
                message.message_id,
                exc,
                message.receive_count,
            )
            self._later(message, self.failure_visibility)
            return "unreadable"
        job = self.store.get(retry.job_id, with_attempts=False)
        if job is None:
            log.error(
                "message %s names job %s, which this database does not have (receive %d); it "
                "goes to the dead-letter queue after maxReceiveCount receives",
                message.message_id,
                retry.job_id,
                message.receive_count,
                extra={"transaction_id": retry.payment_session_id},
            )
            self._later(message, self.failure_visibility)
            return "unknown_job"
        return self._for_job(message, retry, job, looked_again=False)

    def _for_job(self, message: Received, retry: RetryMessage, job: Job, looked_again: bool) -> str:
        now = self.clock()
        extra = {"transaction_id": job.transaction_id, "attempt": retry.attempt_number}
        if (
            job.state.final
            or job.state is JobState.AWAITING_PAYER
            or retry.attempt_number != job.attempt_count + 1
        ):
            log.info("message for a past attempt (job %s); dropped", job.state.value, extra=extra)
            self._ack(message)
            return "dropped"
        if job.state is JobState.RUNNING:
            if job.lease_expires_at is not None and job.lease_expires_at > now:
                wait_s = math.ceil((job.lease_expires_at - now).total_seconds()) + 1
                log.info("job leased by another runner; message hidden %ds", wait_s, extra=extra)
                self._later(message, wait_s)
                return "leased"
            # Its holder died: back to scheduled (the same key re-sent), or parked if too often.
            self.store.rescue(now, max_rescues=self.runner.steps.max_rescues)
            return self._look_again(message, retry, job, looked_again)
        assert job.next_retry_at is not None
        if job.next_retry_at > now:
            wait_s = math.ceil((job.next_retry_at - now).total_seconds())
            if wait_s <= MAX_DELAY_SECONDS:
                self._later(message, wait_s)
                return "early"
            # Rescheduled since (not by an attempt): forget this message; sent again when due.
            self.store.undispatch(job.id, retry.attempt_number)
            self._ack(message)
            return "dropped"
        runner = self.runner
        claimed = self.store.claim(
            now, 1, runner.lease_for, job_id=job.id, rules=runner.policy.network
        )
        for held in claimed.held:  # a card-network rule moved or stopped it: not sent
            log.info("not attempted: %s", held.job.reason, extra=extra)
        if not claimed:  # another runner took it meanwhile, or the rules held it
            return self._look_again(message, retry, job, looked_again)
        if claimed[0].attempt_number != retry.attempt_number:  # pragma: no cover - a race
            self.store.release(claimed, now)
            return self._look_again(message, retry, job, looked_again)
        return self._attempt(message, claimed[0])

    def _look_again(self, message: Received, retry: RetryMessage, job: Job, looked: bool) -> str:
        fresh = self.store.get(job.id, with_attempts=False)
        if looked or fresh is None:
            self._later(message, self.failure_visibility)
            return "busy"
        return self._for_job(message, retry, fresh, looked_again=True)

    def _attempt(self, message: Received, claimed: Claimed) -> str:
        runner, job = self.runner, claimed.job
        results: list[JobResult] = []
        try:
            report = runner.attempt_claimed(claimed, results.append)
        except PayretryError as exc:  # refused before sending (credentials): job given back
            log.error(
                "attempt refused: %s; message back in %ds",
                exc,
                self.failure_visibility,
                extra={"transaction_id": job.transaction_id},
            )
            self._later(message, self.failure_visibility)
            return "refused"
        lease_s = math.ceil(runner.lease_for.total_seconds()) + 1
        if not results:
            if report.counts["released"]:  # stopping before it started: someone else's now
                self._later(message, 0)
                return "released"
            self._later(message, lease_s)  # not recorded: the lease lapses, the rescue returns it
            return "unrecorded"
        result = results[0]
        if result.outcome == IN_DOUBT:  # same key re-sent once the lease lapses
            self._later(message, lease_s)
            return "in_doubt"
        if result.recorded:
            try:
                dispatch_soon(self.dispatcher, results)
            except PayretryError as exc:  # serve's or run-due's pass sends it
                log.warning("could not dispatch the next retry now: %s", exc)
        self._ack(message)
        return result.outcome  # a recorded outcome, or lost_lease (another runner's now)

    # -- the message's fate --------------------------------------------------------------------

    def _ack(self, message: Received) -> None:
        self.keeper.discard(message.receipt)
        self.deleter.add(message.receipt)

    def _later(self, message: Received, seconds: int) -> None:
        self.keeper.discard(message.receipt)
        try:
            self.queue.hide([message.receipt], seconds)
        except QueueError as exc:  # it comes back after the visibility timeout instead
            log.warning("could not hide message %s: %s", message.message_id, exc)
