"""Sealed counts (store/counts.py): `stats` and `telemetry` give the same numbers as counting
every row, before and after the mark moves, after purge takes sealed jobs away, and with jobs
still moving behind and ahead of the mark. SQL stores only (the twin counts its rows)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from payretry.domain.changes import Queued
from payretry.domain.models import JobState
from payretry.domain.ports import Stats
from payretry.store import reports
from payretry.store.counts import AttemptKey, count, mark
from payretry.store.sql import SqlStore
from tests.contract.conftest import ContractStore, sql_only
from tests.contract.test_store_contract import LEASE, NOW, failed_retry, make_job, succeeded

OLD = NOW - timedelta(days=60)


def everything(store: SqlStore) -> tuple[dict[str, int], dict[str, int], dict[AttemptKey, int]]:
    """Every row counted, the plain way."""
    with store._tx(readonly=True) as conn:
        found = count(conn)
    return dict(found.by_state), dict(found.by_error), dict(found.attempts)


def same(stats: Stats, store: SqlStore) -> None:
    by_state, by_error, attempts = everything(store)
    assert dict(stats.by_state) == by_state
    assert stats.total == sum(by_state.values())
    outcomes: dict[str, int] = {}
    for (_, outcome, _, _), n in attempts.items():
        outcomes[outcome] = outcomes.get(outcome, 0) + n
    assert dict(stats.attempts_by_outcome) == outcomes
    queued_after = sum(by_error.values())
    failed_attempts = sum(n for (_, o, _, _), n in attempts.items() if o == "failed")
    assert sum(stats.by_error_code.values()) == queued_after + failed_attempts


def test_stats_are_exact_as_the_mark_moves_and_purge_removes(
    contract_store: ContractStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = sql_only(contract_store, "sealed counts are the SQL store's")
    # Old finished jobs (cancelled, failed), then old succeeded ones with their attempts.
    store.insert_many(
        [
            Queued(make_job(f"old-{n}", state=state, created_at=OLD, error_code=code))
            for n, (state, code) in enumerate(
                [(JobState.CANCELLED, "card_declined"), (JobState.FAILED, "expired_card")] * 30
            )
        ]
    )
    store.insert_many([Queued(make_job(f"paid-{n}", created_at=OLD)) for n in range(20)])
    claimed = store.claim(NOW, 20, LEASE)
    store.finish([succeeded(c, NOW) for c in claimed[:15]])
    store.finish([failed_retry(c, NOW, NOW + timedelta(days=1)) for c in claimed[15:]])
    store.insert_many([Queued(make_job(f"new-{n}")) for n in range(5)])  # ahead, moving
    before = store.stats(NOW)
    same(before, store)
    with store._tx(readonly=True) as conn:
        assert mark(conn) == 0  # fewer than SEAL_AFTER behind: nothing sealed yet

    monkeypatch.setattr(reports, "SEAL_AFTER", 1)
    after = store.stats(NOW)
    with store._tx(readonly=True) as conn:
        assert mark(conn) == 60 + 15  # up to the first job still moving (a failed retry)
    assert after == before
    assert store.telemetry(NOW).by_state == before.by_state

    # The five retried ones succeed: now the mark can pass them, up to the new ones.
    more = store.claim(NOW + timedelta(days=2), 10, LEASE)
    assert {c.job.transaction_id for c in more} == {f"paid-{n}" for n in range(15, 20)} | {
        f"new-{n}" for n in range(5)
    }
    retried = [c for c in more if c.job.transaction_id.startswith("paid-")]
    store.finish([succeeded(c, NOW + timedelta(days=2)) for c in retried])
    moved = store.stats(NOW)
    same(moved, store)
    with store._tx(readonly=True) as conn:
        assert mark(conn) == 80  # the new ones (still running) hold it

    # Purge the old cancelled and failed ones (sealed): the counts follow, exactly.
    assert store.purge(NOW - timedelta(days=30)) == 60
    purged = store.stats(NOW)
    same(purged, store)
    assert "cancelled" not in purged.by_state and purged.by_state["succeeded"] == 20
    assert "card_declined" not in purged.by_error_code  # sealed, then purged to zero
    assert store.purge(NOW + timedelta(days=30)) == 20  # the rest of the finished ones
    same(store.stats(NOW), store)
