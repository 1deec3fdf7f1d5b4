"""`--concurrency N`: a claimed batch's attempts in a bounded pool of threads, and when not to.

Threads only help while the processor waits (a network round trip). When its answers come
back at once (the simulated processor, a stub), handing each attempt to a thread and back
costs more than the attempt itself, so a batch goes through in order on the batch's own thread
whenever the attempts of the batch before took less than `QUICK` each on average (`Latency`);
a batch after a slow one goes to the pool. A run's first batch, when nothing is known yet,
makes its first attempt alone, in order, and that attempt's time decides the rest of the batch
(service/execution.py): a run at zero latency never goes through the pool at all. Either way
the attempts, their keys, the lease fencing and the order of recording are the same: only who
waits differs.

In the pool, outcomes are recorded a group at a time (`RECORD_EVERY`, and the rest when the
batch ends) on the batch's thread: one transaction per group, not one per answer. An outcome
not yet recorded when the process dies is re-sent with the same key once the lease lapses,
exactly as in the in-order path, which records its batch at the end.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import timedelta
from typing import Protocol, TypeVar

from payretry.domain.changes import Claimed, Finish, Unsettled
from payretry.pacing import RateLimiter
from payretry.service.reporting import Reporter

log = logging.getLogger("payretry")

# An attempt answered in less than this (on average, over the last batch) gains nothing from a
# thread: at zero latency the pool's hand-over costs some 100-300 us an attempt on this
# machine's 2 cores, against tens of microseconds for the attempt. Any processor behind a
# network is 10 to 1000 times slower than this.
QUICK = 0.001
RECORD_EVERY = 50  # outcomes per transaction in the pool (the rest when the batch ends)

Outcome = Finish | Unsettled
Timed = tuple[Outcome | Claimed, float]
T = TypeVar("T")


class Latency:
    """The mean time an attempt took over the last batch that had any."""

    def __init__(self) -> None:
        self.mean: float | None = None  # unknown until a batch has run
        self._total = 0.0
        self._count = 0
        self._lock = threading.Lock()

    def add(self, seconds: float) -> None:
        with self._lock:
            self._total += seconds
            self._count += 1

    def close_batch(self) -> None:
        with self._lock:
            if self._count:
                self.mean = self._total / self._count
            self._total, self._count = 0.0, 0

    @property
    def quick(self) -> bool:
        return self.mean is not None and self.mean < QUICK


class Attempts(Protocol):
    """What the pool needs of the execution (service/execution.py)."""

    concurrency: int
    grace: timedelta
    stop: threading.Event
    latency: Latency
    limiter: RateLimiter | None

    def may_start(self, *, pace: bool = True) -> bool: ...
    def attempt(self, claimed: Claimed) -> Outcome: ...
    def ended(self, item: Outcome) -> Outcome: ...
    def record(self, items: list[Outcome], reporter: Reporter) -> None: ...
    def release(self, unstarted: list[Claimed], reporter: Reporter) -> None: ...


def timed(attempt: Callable[[Claimed], T], claimed: Claimed) -> tuple[T, float]:
    """What `attempt(claimed)` returned, and the seconds it took."""
    started = time.perf_counter()
    item = attempt(claimed)
    return item, time.perf_counter() - started


def in_pool(execution: Attempts, batch: list[Claimed], reporter: Reporter) -> None:
    """The batch's attempts in a pool of `concurrency` threads, each waiting for the limiter
    right before its request; the outcomes recorded on this thread, a group at a time."""
    pool = ThreadPoolExecutor(execution.concurrency, thread_name_prefix="payretry-attempt")
    in_flight: set[Future[Timed]] = set()
    finishes: list[Outcome] = []
    failure: BaseException | None = None

    def paced(claimed: Claimed) -> Timed:
        """In a pool thread: wait for the limiter right before the request, so the pace the
        processor sees is the pace granted; the claim itself comes back if a stop came first.
        The time taken leaves out the wait."""
        limiter = execution.limiter  # one may come with a 429 meanwhile
        if limiter is not None and not limiter.acquire(execution.stop):
            return claimed, 0.0
        return timed(execution.attempt, claimed)

    def collect(done: set[Future[Timed]]) -> None:
        nonlocal failure
        unstarted: list[Claimed] = []
        for future in done:
            try:
                item, seconds = future.result()
            except BaseException as exc:  # stays leased; rescued and re-sent with its key
                failure = failure or exc
                continue
            if isinstance(item, Claimed):
                unstarted.append(item)
            else:
                execution.latency.add(seconds)
                finishes.append(execution.ended(item))
        execution.release(unstarted, reporter)

    def flush(at_least: int = 1) -> None:
        if len(finishes) >= at_least:
            execution.record(finishes[:], reporter)
            finishes.clear()

    try:
        for index, claimed in enumerate(batch):
            while len(in_flight) >= execution.concurrency:
                done, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
                collect(done)
                flush(RECORD_EVERY)
            if failure is not None or not execution.may_start(pace=False):
                execution.release(batch[index:], reporter)
                break
            in_flight.add(pool.submit(paced, claimed))
        timeout = execution.grace.total_seconds() if execution.stop.is_set() else None
        done, in_flight = wait(in_flight, timeout=timeout)
        collect(done)
        if in_flight:
            reporter.report.counts["unfinished"] += len(in_flight)
            log.warning(
                "%d attempt(s) still running after the grace period; their leases will "
                "expire and the rescue will re-send them with the same keys",
                len(in_flight),
            )
    finally:
        try:
            flush()
        finally:
            pool.shutdown(wait=not in_flight, cancel_futures=True)
    if failure is not None:
        raise failure
