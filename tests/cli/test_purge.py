"""payretry purge: what it removed, and how long its batches held the write lock at most."""

from __future__ import annotations

from datetime import timedelta

from tests.cli.conftest import Clock, Invoke, doc, ok, queued


def test_purge_says_how_long_its_batches_held_the_lock(invoke: Invoke, clock: Clock) -> None:
    for txn in ("txn_1", "txn_2"):
        queued(invoke, txn)
        ok(invoke("cancel", txn))
    clock.tick(timedelta(days=2).total_seconds())
    dry = doc(ok(invoke("purge", "--older-than", "1d", "--dry-run", "--json")))
    assert dry["jobs"] == 2 and dry["transactions"] == 0  # a dry run writes nothing
    purged = doc(ok(invoke("purge", "--older-than", "1d", "--json")))
    assert purged["jobs"] == 2
    assert purged["transactions"] == 2  # one batch of jobs, then the old webhook records
    assert 0 < purged["longest_hold_ms"] < 30_000
    assert purged["longest_wait_ms"] >= 0
    queued(invoke, "txn_3")
    ok(invoke("cancel", "txn_3"))
    clock.tick(timedelta(days=2).total_seconds())
    said = ok(invoke("purge", "--older-than", "1d")).output
    assert "Removed 1 finished job(s) older than 1d" in said
    assert "Longest write-lock hold " in said and " ms (2 transaction(s))." in said
    dry_said = ok(invoke("purge", "--older-than", "1d", "--dry-run")).output
    assert "write-lock" not in dry_said
