"""Delivery: hand outbox entries to each sink, in order, at least once.

Each sink is delivered on its own: it takes a lease on its row (so two `serve` processes, or
`serve` and a cron `events deliver`, do not both send), reads the entries after its cursor,
sends their events, and moves its cursor past them. A sink that fails keeps its cursor, so its
events wait; it backs off (1s, 2s, 4s ... up to `max_backoff`) and other sinks go on. Nothing
here touches jobs: a sink that is down never holds up a retry.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from payretry.backoff import Backoff
from payretry.domain.durations import iso
from payretry.domain.events import events_of
from payretry.domain.outbox import Cursor, EventStore, GaugeSink, Sink, SinkError, SinkState

log = logging.getLogger("payretry")
Clock = Callable[[], datetime]


@dataclass
class SinkResult:
    sink: str
    entries: int = 0  # outbox entries taken (state changes)
    events: int = 0  # events sent
    error: str | None = None  # why the sink failed this time (its events wait)
    skipped: str | None = None  # why it was not tried: another process, or backing off
    retry_at: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "sink": self.sink,
            "entries": self.entries,
            "events": self.events,
            "error": self.error,
            "skipped": self.skipped,
            "retry_at": iso(self.retry_at),
        }


class Delivery:
    def __init__(
        self,
        store: EventStore,
        sinks: Sequence[Sink],
        *,
        gauges: Sequence[GaugeSink] = (),
        clock: Clock,
        batch_size: int = 100,
        max_backoff: timedelta = timedelta(minutes=5),
        lease_for: timedelta = timedelta(minutes=5),
        stop: threading.Event | None = None,
    ) -> None:
        self.store = store
        self.sinks = list(sinks)
        self.gauges = {gauge.name: gauge for gauge in gauges}  # reported after their sink
        self.clock = clock
        self.batch_size = batch_size
        self.retry = Backoff(first=1.0, factor=2.0, cap=max_backoff.total_seconds())
        self.lease_for = lease_for
        self.stop = stop or threading.Event()

    @property
    def names(self) -> list[str]:
        return [sink.name for sink in self.sinks]

    def backoff(self, failures: int) -> timedelta:
        """How long a sink that has failed `failures` times in a row waits: 1s doubling."""
        return self.retry.timedelta(failures)

    def deliver(self, *, limit: int | None = None) -> list[SinkResult]:
        """Every sink once, one after another: each until its backlog is sent, it fails, or
        `limit` entries have gone."""
        return [self.deliver_sink(sink, limit=limit) for sink in self.sinks]

    def deliver_sink(self, sink: Sink, *, limit: int | None = None) -> SinkResult:
        result = SinkResult(sink.name)
        state = self.store.lease_sink(sink.name, self.clock(), self.lease_for)
        if state is None:
            current = self.store.sink_states().get(sink.name)
            if current is not None and current.retry_at and current.retry_at > self.clock():
                result.skipped = "backing off after a failure"
                result.retry_at = current.retry_at
            else:
                result.skipped = "another process is delivering to it"
            return result
        try:
            self._drain(sink, state, result, limit)
        except Exception as exc:
            self._failed(sink, state, result, exc)
        else:
            self.store.release_sink(state, self.clock())
        self._report(sink)
        return result

    def _drain(self, sink: Sink, state: SinkState, result: SinkResult, limit: int | None) -> None:
        cursor = state.cursor
        while not self.stop.is_set() and (limit is None or result.entries < limit):
            size = self.batch_size
            if limit is not None:
                size = min(size, limit - result.entries)
            entries = self.store.entries_after(cursor, size)
            if not entries:
                return
            events = events_of(entries)
            sink.send(events)
            cursor = Cursor.of(entries[-1])
            now = self.clock()
            if not self.store.advance_sink(state, cursor, len(entries), now, now + self.lease_for):
                log.warning("lost the delivery lease of sink %s to another process", sink.name)
                return
            result.entries += len(entries)
            result.events += len(events)

    def _failed(self, sink: Sink, state: SinkState, result: SinkResult, exc: Exception) -> None:
        if isinstance(exc, SinkError):
            error = str(exc)
        else:  # a bug or a library's surprise: the sink fails, the others go on
            error = f"{type(exc).__name__}: {exc}"
        now = self.clock()
        wait = self.backoff(state.failures + 1)
        result.error = error
        result.retry_at = now + wait
        try:
            self.store.sink_failed(state, error, result.retry_at, now)
        except Exception as store_exc:  # its lease lapses instead
            log.error("could not record the failure of sink %s: %s", sink.name, store_exc)
        log.warning(
            "sink %s failed (%s); its events wait, next try at %s",
            sink.name,
            error,
            iso(result.retry_at),
        )

    def _report(self, sink: Sink) -> None:
        """Gauges for sinks that report them (DogStatsD), at most every so often."""
        gauge = self.gauges.get(sink.name)
        if gauge is None or not gauge.report_due():
            return
        try:
            gauge.report(self.store.telemetry(self.clock(), self.names))
        except Exception as exc:
            log.warning("could not report gauges to %s: %s", sink.name, exc)

    def purge(self, before: datetime) -> int:
        """Entries older than `before` that every configured sink has taken."""
        return self.store.purge_events(before, self.names)

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()
