"""One backoff for every infrastructure wait: a database that went away, a sink that failed, a
webhook re-send, a queue that did not answer.

`Backoff` is the schedule (first delay, growth, cap) and answers "how long before try n": a
sink's next try is stored as a time, so the delay must be a value, not a sleep. `Patience` walks
that schedule for a loop that waits in place: each `wait()` sleeps the next delay on a stop
event (a SIGTERM ends it at once) and gives up once the waits add up to the limit.

A library such as tenacity wraps a call and sleeps for it; here two of the four waits are not
around one call (a sink's backoff is persisted as `retry_at`; the runner's reconnect wraps a whole
pass), so the schedule is kept as a value of its own.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delays `first`, `first * factor`, ... never above `cap`."""

    first: float
    factor: float = 2.0
    cap: float = 30.0

    def delay(self, tries: int) -> float:
        """Seconds to wait before try `tries + 1`, after `tries` failures (the first: `first`)."""
        exponent = min(max(tries - 1, 0), 64)
        return float(min(self.first * self.factor**exponent, self.cap))

    def timedelta(self, tries: int) -> timedelta:
        return timedelta(seconds=self.delay(tries))

    def patience(self, stop: threading.Event, limit: float | None = None) -> Patience:
        return Patience(self, stop, limit)


class Patience:
    """Waits on `stop` along a backoff, until the waits add up to `limit` seconds (None: no
    limit). `wait()` returns False when it gave up (the limit reached, or a stop requested)."""

    def __init__(self, backoff: Backoff, stop: threading.Event, limit: float | None) -> None:
        self.backoff = backoff
        self.stop = stop
        self.limit = limit
        self.tries = 0
        self.waited = 0.0

    def reset(self) -> None:
        self.tries, self.waited = 0, 0.0

    @property
    def next_delay(self) -> float:
        return self.backoff.delay(self.tries + 1)

    @property
    def spent(self) -> bool:
        """The waits have added up to the limit, or a stop was requested: give up."""
        return self.stop.is_set() or (self.limit is not None and self.waited >= self.limit)

    def wait(self) -> bool:
        """Sleep the next delay; False if it gave up instead, or a stop cut the wait short."""
        if self.spent:
            return False
        delay = self.next_delay
        self.tries += 1
        self.waited += delay
        return not self.stop.wait(delay)
