"""Purge batches sized by time (store/purge.py), on a clock the test moves."""

from __future__ import annotations

from payretry.store.purge import SQLITE_PAUSE, Batches, batches_for


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def timer(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_batches_grow_toward_the_target_and_shrink_at_once_when_one_runs_long() -> None:
    clock = Clock()
    rows = 100_000
    sizes: list[int] = []

    def step(size: int) -> int:
        nonlocal rows
        sizes.append(size)
        clock.now += size * (20e-6 if len(sizes) < 6 else 200e-6)  # slower from the 6th on
        done = min(size, rows)
        rows -= done
        return done

    batches = Batches(target=0.2, pause=0.1, first=500, timer=clock.timer, sleep=clock.sleep)
    assert batches.run(step) == 100_000
    assert sizes[:6] == [500, 1000, 2000, 4000, 8000, 10_000]  # twofold at most, then 0.2 s
    assert sizes[6] == 1000  # 10,000 rows took 2 s: back to what fits in 0.2 s at once
    assert all(size == 1000 for size in sizes[7:])
    assert batches.longest == 2.0  # the one batch that ran long, before the size followed
    assert clock.slept == [0.1] * (len(sizes) - 1)  # a pause between batches, none after


def test_sizes_stay_within_their_bounds() -> None:
    batches = Batches(smallest=50, largest=20_000)
    assert batches.next_size(500, 100.0) == 50
    assert batches.next_size(15_000, 0.001) == 20_000
    assert batches.next_size(500, 0.0) == 1000


def test_only_sqlite_pauses_between_batches() -> None:
    assert batches_for("sqlite").pause == SQLITE_PAUSE > 0.1  # longer than the busy handler's
    assert batches_for("postgresql").pause == 0.0


def test_sqlite_batches_aim_lower_and_grow_slowly() -> None:
    # Every other SQLite writer waits out a whole batch, and a batch can take many times what
    # the one before foretold: short batches, grown by a quarter at most.
    lite, pg = batches_for("sqlite"), batches_for("postgresql")
    assert lite.target == 0.1 < pg.target
    assert lite.next_size(1000, 0.001) == 1250
    assert pg.next_size(1000, 0.001) == 2000
    assert lite.next_size(1000, 1.0) == 100  # still shrinks at once
    assert lite.next_size(50, 0.0) == 62


def test_a_step_that_removes_nothing_ends_at_once() -> None:
    clock = Clock()
    batches = Batches(pause=0.1, timer=clock.timer, sleep=clock.sleep)
    assert batches.run(lambda size: 0) == 0
    assert clock.slept == []
