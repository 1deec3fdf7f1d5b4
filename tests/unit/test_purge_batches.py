"""Purge batches sized by time (store/purge.py), on a clock the test moves."""

from __future__ import annotations

import logging

import pytest

from payretry.store.purge import LOG_OVER, SQLITE_PAUSE, Batches, batches_for


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


class Lock:
    """A transaction on the test's clock: `wait` seconds to begin, `commit` to commit."""

    def __init__(self, clock: Clock, wait: float, commit: float) -> None:
        self.clock, self.wait, self.commit = clock, wait, commit

    def __call__(self) -> Lock:
        return self

    def __enter__(self) -> str:
        self.clock.now += self.wait
        return "conn"

    def __exit__(self, *exc: object) -> None:
        self.clock.now += self.commit


def test_a_transaction_counts_its_hold_from_begin_to_the_end_of_commit_not_its_wait() -> None:
    clock = Clock()
    batches = Batches(timer=clock.timer, sleep=clock.sleep)
    with batches.transaction(Lock(clock, wait=3.0, commit=0.25), 100) as conn:
        assert conn == "conn"
        clock.now += 0.5  # the batch's statements
    with batches.transaction(Lock(clock, wait=0.0, commit=0.0)):
        clock.now += 0.1
    assert batches.holds.transactions == 2
    # 0.5 s of statements and 0.25 s of COMMIT; not the 3 s it waited for the lock
    assert batches.holds.longest == pytest.approx(0.75)
    assert batches.holds.longest_wait == 3.0


def test_a_failed_transaction_is_not_counted() -> None:
    clock = Clock()
    batches = Batches(timer=clock.timer, sleep=clock.sleep)
    try:
        with batches.transaction(Lock(clock, wait=0.0, commit=0.0)):
            raise RuntimeError("rolled back")
    except RuntimeError:
        pass
    assert batches.holds.transactions == 0


def test_batches_are_sized_by_their_hold_not_by_the_wait_for_the_lock() -> None:
    # Every batch waits 5 s for a busy lock and then holds it 0.1 s: sized by the whole step
    # it would shrink to the smallest; sized by the hold it grows as if alone.
    clock = Clock()
    sizes: list[int] = []
    batches = Batches(target=0.2, first=500, timer=clock.timer, sleep=clock.sleep)

    def step(size: int) -> int:
        sizes.append(size)
        with batches.transaction(Lock(clock, wait=5.0, commit=0.0), size):
            clock.now += 0.1
        return size if len(sizes) < 4 else 0

    batches.run(step)
    assert sizes == [500, 1000, 2000, 4000]
    assert batches.longest == pytest.approx(0.1)
    assert batches.holds.longest_wait == 5.0


def test_the_hold_is_logged_when_a_batch_holds_long(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    batches = Batches(timer=clock.timer, sleep=clock.sleep)
    with caplog.at_level(logging.DEBUG, logger="payretry.store.purge"):
        with batches.transaction(Lock(clock, wait=0.04, commit=0.0), 800):
            clock.now += LOG_OVER / 2
        assert caplog.messages == []
        with batches.transaction(Lock(clock, wait=0.04, commit=0.0), 800):
            clock.now += LOG_OVER * 2
    assert caplog.messages == [
        "a batch of up to 800 row(s) held the lock 400 ms (after waiting 40 ms for it)"
    ]


def test_between_runs_after_every_batch_but_the_last_before_the_pause() -> None:
    clock = Clock()
    events: list[str] = []
    left = 1_200

    def step(size: int) -> int:
        nonlocal left
        events.append(f"batch {size}")
        done = min(size, left)
        left -= done
        return done

    def sleep(seconds: float) -> None:
        events.append("pause")

    batches = Batches(pause=0.1, first=500, growth=1.0, timer=clock.timer, sleep=sleep)
    batches.between = lambda: events.append("between")
    assert batches.run(step) == 1_200
    assert events == ["batch 500", "between", "pause", "batch 501", "between", "pause", "batch 502"]
