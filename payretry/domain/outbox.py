"""The ports of event delivery: where each sink has got to, what a sink is, what the store
must offer; and the numbers metrics are made of."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from payretry.domain.analytics import Histogram, RetryFrequency
from payretry.domain.events import Event, OutboxEntry


@dataclass(frozen=True, order=True, slots=True)
class Cursor:
    """The last outbox entry a sink has taken, in delivery order: (transaction id, seq)."""

    txid: int = 0
    seq: int = 0

    @classmethod
    def of(cls, entry: OutboxEntry) -> Cursor:
        return cls(entry.txid, entry.seq)

    def passed(self, entry: OutboxEntry) -> bool:
        return (entry.txid, entry.seq) <= (self.txid, self.seq)


@dataclass(frozen=True, slots=True)
class SinkState:
    name: str
    cursor: Cursor = Cursor()
    delivered: int = 0  # outbox entries (changes) taken so far
    failures: int = 0  # in a row; 0 after a success
    last_error: str | None = None
    retry_at: datetime | None = None  # backing off until then
    lease_token: str | None = None
    lease_expires_at: datetime | None = None
    updated_at: datetime | None = None


class SinkError(Exception):
    """A sink could not take a batch; its events stay pending and are offered again later."""


class Sink(Protocol):
    """Somewhere events go. `send` delivers the whole batch or raises SinkError; a batch may
    be offered again after a crash or a failure, so receivers drop duplicates by event id."""

    name: str

    def send(self, events: Sequence[Event]) -> None: ...

    def close(self) -> None: ...


class GaugeSink(Protocol):
    """A sink that also reports gauges read from the store (DogStatsD), every so often."""

    name: str

    def report_due(self) -> bool: ...

    def report(self, telemetry: Telemetry) -> None: ...


@dataclass(frozen=True, slots=True)
class Telemetry:
    """What metrics report, read from the store in one go."""

    at: datetime
    by_state: Mapping[str, int]
    attempts_by_number: Mapping[int, int]  # attempts made (any outcome), by attempt number
    failures: Mapping[tuple[str, int], int]  # (decline or error code, attempt number) -> n
    succeeded: int  # attempts that succeeded
    finished: int  # attempts that succeeded or failed
    queue_size: int  # active jobs: scheduled, running, awaiting_payer
    due_now: int
    oldest_due_at: datetime | None
    pending_events: Mapping[str, int] = field(default_factory=dict)  # per sink
    blocked_by_rule: Mapping[str, int] = field(default_factory=dict)  # blocked jobs, per rule
    # retry_processing_time: attempt durations by (processor, outcome), from the rollups
    processing: Mapping[tuple[str, str], Histogram] = field(default_factory=dict)
    # user_retry_frequency: users by their number of retries in the last USER_WINDOW
    retry_frequency: RetryFrequency = field(default_factory=RetryFrequency)

    @property
    def success_rate(self) -> float | None:
        return self.succeeded / self.finished if self.finished else None

    @property
    def oldest_due_age(self) -> timedelta:
        return self.at - self.oldest_due_at if self.oldest_due_at else timedelta(0)


class EventStore(Protocol):
    def entries_for_job(self, job_id: str) -> list[OutboxEntry]: ...

    def recent_entries(self, *, limit: int) -> list[OutboxEntry]:
        """The newest entries, newest first."""
        ...

    def entries_after(
        self, cursor: Cursor, limit: int, *, settled: bool = True
    ) -> list[OutboxEntry]:
        """Committed entries after `cursor` in delivery order; `settled`: none of which a
        transaction still in flight could precede (what delivery may take)."""
        ...

    def count_after(self, cursor: Cursor) -> int: ...

    def sink_states(self) -> dict[str, SinkState]: ...

    def lease_sink(self, name: str, now: datetime, lease_for: timedelta) -> SinkState | None:
        """Take the sink for delivery, unless another process holds it or it is backing off."""
        ...

    def advance_sink(
        self, state: SinkState, cursor: Cursor, count: int, now: datetime, lease_until: datetime
    ) -> bool:
        """Record a delivered batch (fenced by the lease); False when the lease was lost."""
        ...

    def sink_failed(
        self, state: SinkState, error: str, retry_at: datetime, now: datetime
    ) -> None: ...

    def release_sink(self, state: SinkState, now: datetime) -> None: ...

    def purge_events(self, before: datetime, sinks: Sequence[str]) -> int:
        """Remove entries older than `before` that every sink named has taken."""
        ...

    def telemetry(self, now: datetime, sinks: Sequence[str] = ()) -> Telemetry: ...
