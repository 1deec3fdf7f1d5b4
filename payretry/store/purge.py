"""Long deletes in short transactions, each sized by the time it took, so a purge of a million
finished jobs never keeps other writers (a running `run-due`, `queue`) waiting long.

Why a pause as well as small batches: SQLite's lock is not a queue. A writer that finds the
database locked sleeps in its busy handler (1, 2, 5 ... up to 100 ms between tries) and takes
the lock only if it happens to be free when it wakes; a purge that begins its next batch the
moment it commits the last one can keep it for seconds. Between batches the purge waits
`pause` (longer than the busy handler's longest sleep), so every waiting writer gets its turn.
On PostgreSQL a purge takes only the rows' own locks; the pause there is 0.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

# SQLite's default busy handler sleeps at most 100 ms between tries: a longer pause lets every
# waiter in.
SQLITE_PAUSE = 0.12
# On SQLite every other writer waits out the whole batch. A purge of a million jobs beside a
# run-due (scripts/bench.py --sections scale, 2 busy cores) met batches taking up to 10 times
# what the one before them foretold (p99; the median 0.9), mostly just after a twofold
# growth: so there the batches aim at 0.1 s and grow by a quarter at most.
SQLITE_TARGET = 0.1
SQLITE_GROWTH = 1.25


@dataclass
class Batches:
    """Run `step(size)` (one transaction removing up to `size` rows, returning how many it
    removed) until it removes fewer than `size`; after each, size the next batch so it takes
    about `target` seconds, between `smallest` and `largest` rows."""

    target: float = 0.2
    pause: float = 0.0
    growth: float = 2.0  # the most a batch grows over the one before
    first: int = 500
    smallest: int = 50
    largest: int = 20_000
    timer: Callable[[], float] = time.perf_counter
    sleep: Callable[[float], None] = time.sleep
    longest: float = field(default=0.0, init=False)  # the longest batch seen, in seconds

    def run(self, step: Callable[[int], int]) -> int:
        removed, size = 0, self.first
        while True:
            started = self.timer()
            done = step(size)
            took = self.timer() - started
            self.longest = max(self.longest, took)
            removed += done
            if done < size:
                return removed
            size = self.next_size(size, took)
            if self.pause:
                self.sleep(self.pause)

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
