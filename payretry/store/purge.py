"""Long deletes in short transactions, each sized by the time it took, so a purge of a million
finished jobs never keeps other writers (a running `run-due`, `queue`) waiting long.

Why a pause as well as small batches: SQLite's lock is not a queue. A writer that finds the
database locked sleeps in its busy handler (1, 2, 5 ... up to 100 ms between tries) and takes
the lock only if it happens to be free when it wakes; a purge that begins its next batch the
moment it commits the last one can keep it for seconds. Between batches the purge waits
`pause` (longer than the busy handler's longest sleep), so every waiting writer gets its turn.
On PostgreSQL a purge takes only the rows' own locks; the pause there is 0.

What the other writers wait for is how long each batch HOLDS the lock: from the moment its
BEGIN returned (on SQLite, BEGIN IMMEDIATE takes the write lock) to the end of its COMMIT, the
wait for the lock not included. `Batches.transaction` measures exactly that, sizes the next
batch by it (a batch that waited long for a busy lock is no reason to shrink the next), and
keeps the longest in `Batches.holds`; a batch held longer than `LOG_OVER` is logged (debug).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")

# SQLite's default busy handler sleeps at most 100 ms between tries: a longer pause lets every
# waiter in.
SQLITE_PAUSE = 0.12
# On SQLite every other writer waits out the whole batch. A purge of a million jobs beside a
# run-due (scripts/bench.py --sections scale, 2 busy cores) met batches taking up to 10 times
# what the one before them foretold (p99; the median 0.9), mostly just after a twofold
# growth: so there the batches aim at 0.1 s and grow by a quarter at most.
SQLITE_TARGET = 0.1
SQLITE_GROWTH = 1.25
# A batch held longer than this (twice SQLite's target) is worth a log line.
LOG_OVER = 0.2


@dataclass
class Holds:
    """How long a run's transactions held the lock (BEGIN returned to COMMIT ended) and how
    long they waited for it, in seconds."""

    transactions: int = 0
    longest: float = 0.0
    longest_wait: float = 0.0

    def add(self, wait: float, hold: float) -> None:
        self.transactions += 1
        self.longest = max(self.longest, hold)
        self.longest_wait = max(self.longest_wait, wait)


@dataclass
class Batches:
    """Run `step(size)` (one transaction removing up to `size` rows, returning how many it
    removed) until it removes fewer than `size`; after each, size the next batch so it takes
    about `target` seconds, between `smallest` and `largest` rows. A step that opens its
    transaction through `transaction` is sized by how long it held the lock; any other by
    how long the whole step took."""

    target: float = 0.2
    pause: float = 0.0
    growth: float = 2.0  # the most a batch grows over the one before
    first: int = 500
    smallest: int = 50
    largest: int = 20_000
    timer: Callable[[], float] = time.perf_counter
    sleep: Callable[[float], None] = time.sleep
    between: Callable[[], None] | None = None  # run after each batch but the last, unlocked
    longest: float = field(default=0.0, init=False)  # the longest batch seen, in seconds
    holds: Holds = field(default_factory=Holds, init=False)
    _held: float | None = field(default=None, init=False, repr=False)

    def run(self, step: Callable[[int], int]) -> int:
        removed, size = 0, self.first
        while True:
            self._held = None
            started = self.timer()
            done = step(size)
            took = self.timer() - started if self._held is None else self._held
            self.longest = max(self.longest, took)
            removed += done
            if done < size:
                return removed
            size = self.next_size(size, took)
            if self.between is not None:
                self.between()
            if self.pause:
                self.sleep(self.pause)

    @contextmanager
    def transaction(
        self, begin: Callable[[], AbstractContextManager[T]], size: int = 0
    ) -> Iterator[T]:
        """`begin()`'s transaction (its connection), timed: the wait until it began, then the
        hold until it committed, added to `holds` (a transaction that fails is not: it rolled
        back, and its error ends the run). `size`: the batch's, for the log line."""
        asked = self.timer()
        with begin() as conn:
            begun = self.timer()
            yield conn
        ended = self.timer()
        self._held = held = ended - begun
        self.holds.add(begun - asked, held)
        if held > LOG_OVER:
            log.debug(
                "a batch of up to %d row(s) held the lock %.0f ms (after waiting %.0f ms for it)",
                size,
                held * 1e3,
                (begun - asked) * 1e3,
            )

    def next_size(self, size: int, took: float) -> int:
        """Aim at `target`, growing at most `growth`-fold a batch (one quick batch proves
        little) and shrinking at once when a batch ran long."""
        most = max(size + 1, int(size * self.growth))
        wanted = most if took <= 0 else round(size * self.target / took)
        return max(self.smallest, min(self.largest, most, wanted))


def batches_for(dialect: str) -> Batches:
    if dialect == "sqlite":
        return Batches(target=SQLITE_TARGET, pause=SQLITE_PAUSE, growth=SQLITE_GROWTH)
    return Batches()
