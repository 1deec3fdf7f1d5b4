"""`payretry serve`: APScheduler 3 as a ticker, and nothing more.

The scheduler keeps its jobs in memory and is never shared between processes: each tick claims
due jobs through the same database claim as `run-due`, so any number of `serve` and `run-due`
processes can run at once. A second job records the daemon's heartbeat, so a long tick never
looks like a dead daemon.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from payretry.domain.outcomes import RunReport
from payretry.domain.ports import CardLedger, Store
from payretry.errors import PayretryError
from payretry.service.duepass import DuePass
from payretry.signals import restore_signals, stop_on_signals

if TYPE_CHECKING:
    from apscheduler.schedulers.background import BackgroundScheduler

    from payretry.domain.outbox import Sink
    from payretry.service.delivery import Delivery

log = logging.getLogger("payretry")
PURGE_EVERY = timedelta(days=1)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class Daemon:
    def __init__(
        self,
        store: Store,
        due: DuePass,
        *,
        stop: threading.Event,
        interval: timedelta,
        retention: timedelta,
        clock: Callable[[], datetime],
        name: str | None = None,
        delivery: Delivery | None = None,
        events_interval: timedelta = timedelta(seconds=5),
        ledger: CardLedger | None = None,
        ledger_retention: timedelta = timedelta(days=31),
    ) -> None:
        self.store = store
        self.ledger = ledger  # the card ledger: its own retention, purged apart from the jobs
        self.ledger_retention = ledger_retention
        self.delivery = delivery  # the event outbox's sinks, each delivered by a job of its own
        self.events_interval = events_interval
        self.due = due  # attempts what is due here, or sends it to SQS
        self.interval = interval
        self.retention = retention
        self.clock = clock
        self.name = name or worker_name()
        self.stop = stop
        self.last_purge: datetime | None = None
        self.ticks = 0
        self.busy = threading.Lock()

    def beat(self) -> None:
        try:
            self.store.beat(self.name, "serve", self.interval, self.clock())
        except PayretryError as exc:
            log.warning("could not record the heartbeat: %s", exc)

    def tick(self) -> RunReport | None:
        """One pass: rescue, abandon lapsed windows, attempt what is due; purge once a day."""
        if self.stop.is_set():
            return None
        with self.busy:
            self.ticks += 1
            try:
                report = self.due.run_due()
                if report.processed or report.counts["abandoned"] or report.rescued:
                    log.info("tick: %s", report.as_dict())
                self._purge_if_due()
                return report
            except PayretryError as exc:  # the database went away, say: try again next tick
                log.error("tick failed: %s", exc)
                return None

    def deliver(self, sink: Sink) -> None:
        """One sink's pass over the outbox; its failures wait for its next pass."""
        if self.stop.is_set() or self.delivery is None:
            return
        try:
            self.delivery.deliver_sink(sink)
        except PayretryError as exc:  # the database went away: the next pass tries again
            log.error("delivery to %s failed: %s", sink.name, exc)

    def _purge_if_due(self) -> None:
        now = self.clock()
        if self.last_purge is not None and now - self.last_purge < PURGE_EVERY:
            return
        if self.delivery is not None:  # outbox entries every sink has taken
            self.delivery.purge(now - self.retention)
        removed = self.store.purge(now - self.retention)
        pruned = self.ledger.purge_card_ledger(now - self.ledger_retention) if self.ledger else 0
        self.last_purge = now
        if removed:
            log.info("purged %d finished job(s) older than the retention period", removed)
        if pruned:
            log.info("purged %d card-ledger entries older than its retention period", pruned)

    def wait_idle(self, timeout: float) -> bool:
        """Wait for a tick in progress to end; False if it is still running after `timeout`."""
        if self.busy.acquire(timeout=timeout):
            self.busy.release()
            return True
        return False


def build_scheduler(daemon: Daemon) -> BackgroundScheduler:
    """The ticker: in-memory job store, one instance at a time, missed ticks coalesced."""
    from apscheduler.schedulers.background import BackgroundScheduler
    from apscheduler.triggers.interval import IntervalTrigger

    scheduler = BackgroundScheduler(timezone=UTC)
    seconds = max(daemon.interval.total_seconds(), 0.01)
    first = datetime.now(UTC)
    common: dict[str, Any] = {"max_instances": 1, "coalesce": True, "misfire_grace_time": None}
    scheduler.add_job(
        daemon.tick,
        IntervalTrigger(seconds=seconds, timezone=UTC),
        id="tick",
        next_run_time=first,
        **common,
    )
    scheduler.add_job(
        daemon.beat,
        IntervalTrigger(seconds=seconds, timezone=UTC),
        id="beat",
        next_run_time=first,
        **common,
    )
    # One job per sink: a sink that is slow or down never holds up a tick or another sink.
    every = max(daemon.events_interval.total_seconds(), 0.01)
    for sink in daemon.delivery.sinks if daemon.delivery is not None else []:
        scheduler.add_job(
            daemon.deliver,
            IntervalTrigger(seconds=every, timezone=UTC),
            args=[sink],
            id=f"deliver:{sink.name}",
            next_run_time=first,
            **common,
        )
    return scheduler


def serve_forever(daemon: Daemon, grace: timedelta) -> int:
    """Run until SIGTERM or SIGINT; then finish in flight within `grace` and exit 0.
    A second signal exits at once (leases expire; the rescue picks those jobs up)."""
    previous = stop_on_signals(daemon.stop, grace)
    scheduler = build_scheduler(daemon)
    scheduler.start()
    try:
        while not daemon.stop.wait(1.0):
            pass
    finally:
        scheduler.shutdown(wait=False)
        finished = daemon.wait_idle(grace.total_seconds() + 5)
        try:
            daemon.store.forget_worker(daemon.name)
        except PayretryError:
            pass
        restore_signals(previous)
    if not finished:
        log.error("a tick was still running after the grace period; exiting anyway")
        os._exit(1)
    return 0
