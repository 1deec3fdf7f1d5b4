"""Pacing: a rate limiter shared by every attempt a process makes to one processor.

Slots are spaced evenly at 1/rate seconds (a GCRA with no burst). A thread that wakes late
for its slot could still bunch up with the next one, so grants are also checked against a log
of the actual grant times: no window of a second (plus 2% for the clock's jitter) ever holds
more than `rate` starts. `pause(seconds)` holds every caller back, for a processor that
answered 429.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable

_MARGIN = 1.02


class RateLimiter:
    def __init__(
        self,
        rate: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.interval = 1.0 / rate
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._next = 0.0
        self._window = max(1.0, 1.0 / rate) * _MARGIN
        self._cap = max(1, math.floor(rate * self._window / _MARGIN))
        self._granted: deque[float] = deque()
        self.waited = 0.0

    def reserve(self) -> float:
        """Take the next slot; return how long the caller must wait for it."""
        with self._lock:
            now = self._clock()
            slot = max(now, self._next)
            self._next = slot + self.interval
            return slot - now

    def _wait(self, delay: float, stop: threading.Event | None) -> bool:
        if delay > 0:
            self.waited += delay
            if stop is not None:
                return not stop.wait(delay)
            self._sleep(delay)
        return stop is None or not stop.is_set()

    def acquire(self, stop: threading.Event | None = None) -> bool:
        """Wait for a slot; False if `stop` was set while waiting (the slot is then unused)."""
        if not self._wait(self.reserve(), stop):
            return False
        while True:
            with self._lock:
                now = self._clock()
                while self._granted and now - self._granted[0] >= self._window:
                    self._granted.popleft()
                if len(self._granted) < self._cap:
                    self._granted.append(now)
                    return True
                delay = self._window - (now - self._granted[0])
            if not self._wait(delay, stop):
                return False

    def wait_free(self, stop: threading.Event | None = None) -> bool:
        """Wait, taking no slot, until the next slot is due (after a `pause`); False if `stop`
        was set meanwhile."""
        with self._lock:
            delay = self._next - self._clock()
        if delay > 0:
            self.waited += delay
            if stop is not None:
                return not stop.wait(delay)
            self._sleep(delay)
        return stop is None or not stop.is_set()

    def pause(self, seconds: float) -> None:
        """No slot before `seconds` from now (the processor asked us to slow down)."""
        with self._lock:
            self._next = max(self._next, self._clock() + seconds)


def parse_rate(text: str | float | int | None) -> float | None:
    """`25/s`, `25`, `1500/m` -> per second; None or 0 means unlimited."""
    if text is None or text == "" or text == 0:
        return None
    if isinstance(text, int | float) and not isinstance(text, bool):
        value = float(text)
    elif isinstance(text, str):
        number, _, unit = text.strip().lower().partition("/")
        scale = {"": 1.0, "s": 1.0, "m": 1 / 60, "min": 1 / 60, "h": 1 / 3600}.get(unit)
        if scale is None:
            raise ValueError(f"{text!r} is not a rate like 25/s or 1500/m")
        try:
            value = float(number) * scale
        except ValueError:
            raise ValueError(f"{text!r} is not a rate like 25/s or 1500/m") from None
    else:
        raise ValueError(f"{text!r} is not a rate like 25/s")
    if value != value or value < 0 or value == float("inf"):
        raise ValueError(f"{text!r} is not a rate like 25/s")
    return value or None
