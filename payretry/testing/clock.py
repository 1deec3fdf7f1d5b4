"""A clock the test holds: pass it wherever payretry takes `clock=`, and move it."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

from payretry.clock import utcnow


class ManualClock:
    """`clock()` is now; `clock.advance(minutes=5)` moves it on; `clock.set(t)` puts it at t.
    Thread-safe: a runner's pool and heartbeat read it while the test moves it."""

    def __init__(self, start: datetime | None = None) -> None:
        start = start or utcnow()
        if start.tzinfo is None:
            raise ValueError("a ManualClock keeps aware UTC time; give it a timezone")
        self._now = start
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self._now

    @property
    def now(self) -> datetime:
        return self()

    def set(self, at: datetime) -> datetime:
        if at.tzinfo is None:
            raise ValueError("a ManualClock keeps aware UTC time; give it a timezone")
        with self._lock:
            self._now = at
            return at

    def advance(self, delta: timedelta | None = None, **parts: float) -> datetime:
        """Move on by `delta`, or by `timedelta(**parts)` (`advance(seconds=30)`)."""
        step = (delta or timedelta()) + timedelta(**parts)
        with self._lock:
            self._now += step
            return self._now
