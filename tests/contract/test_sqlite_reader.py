"""The sqlite3-only reader that `status` uses on a SQLite file (payretry/store/sqlite_read.py)
answers `find` exactly as the store does, on every kind of job; and it declines (so the full
store opens the database and answers as before) whatever it cannot read as it is."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from payretry.domain.changes import Finish, Queued
from payretry.domain.models import CustomerAction, JobState, ProcessorRefs
from payretry.domain.policy import Decision, Outcome
from payretry.domain.results import AttemptResult
from payretry.errors import StoreError
from payretry.store import sqlite_read
from payretry.store.schema import HEAD
from payretry.store.sql import SqlStore, open_store
from payretry.store.sqlite_read import SqliteJobReader
from payretry.store.tables import ATTEMPTS, JOBS, UTCDateTime
from tests.contract.test_store_contract import (
    LEASE,
    NOW,
    ROW,
    failed_retry,
    make_job,
    succeeded,
)


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'reader.db'}"


@pytest.fixture
def store(url: str) -> Iterator[SqlStore]:
    opened = open_store(url)
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def reader(store: SqlStore, url: str) -> Iterator[SqliteJobReader]:
    opened = SqliteJobReader.open(url)
    assert opened is not None
    try:
        yield opened
    finally:
        opened.close()


def _every_kind_of_job(store: SqlStore) -> list[str]:
    """Jobs in each state the store keeps, with every optional field set somewhere; returns
    their transaction ids."""
    rich = replace(
        make_job("txn-rich", amount_minor=123456, currency="KWD", expires_at=NOW + LEASE),
        decline_code="insufficient_funds",
        error_message="declined: ünïcode ✓",
        refs=ProcessorRefs("pi_1", "cus_1", "pm_1", "cs_1"),
        metadata={"order": "42", "note": "naïve ✓", "simulate": "succeeded"},
        card_network="visa",
        card_fingerprint="fp_1",
        network_rule="visa_excessive_retries",
        revived_after=2,
    )
    store.insert(Queued(rich))
    store.insert(Queued(make_job("txn-ok", amount_minor=900)))
    store.insert(Queued(make_job("txn-retry", amount_minor=800)))
    store.insert(Queued(make_job("txn-wait", amount_minor=700)))
    store.insert(Queued(make_job("txn-run", amount_minor=600)))
    claimed = {c.job.transaction_id: c for c in store.claim(NOW, 10, LEASE)}
    later = NOW + timedelta(seconds=3)
    store.finish([succeeded(claimed["txn-ok"], later)])
    store.finish([failed_retry(claimed["txn-retry"], later, NOW + timedelta(hours=6))])
    action = CustomerAction("cs_new", "https://checkout.example/cs_new", NOW + timedelta(days=1))
    awaiting = Decision(Outcome.AWAITING, ROW, "the customer must complete checkout", None, 3)
    result = AttemptResult.awaiting_customer(action, "complete checkout", "awaiting ✓")
    store.finish([Finish(claimed["txn-wait"], result, awaiting, later)])
    # txn-rich and txn-run stay running, with their leases
    # a transaction with finished jobs and an active one; one with finished jobs only
    store.insert(Queued(make_job("txn-many", state=JobState.CANCELLED)))
    store.insert(Queued(make_job("txn-many")))
    store.insert(Queued(make_job("txn-many", state=JobState.EXHAUSTED)))
    store.insert(Queued(make_job("txn-done", state=JobState.FAILED, next_retry_at=None)))
    store.insert(Queued(make_job("txn-done", state=JobState.CANCELLED)))
    return ["txn-rich", "txn-ok", "txn-retry", "txn-wait", "txn-run", "txn-many", "txn-done"]


def test_the_reader_finds_what_the_store_finds(store: SqlStore, reader: SqliteJobReader) -> None:
    transactions = _every_kind_of_job(store)
    states = set()
    for transaction_id in transactions:
        expected = store.find(transaction_id)
        assert expected is not None
        assert reader.find(transaction_id) == expected, transaction_id
        states.add(expected.state)
    assert states >= {
        JobState.RUNNING,
        JobState.SUCCEEDED,
        JobState.SCHEDULED,
        JobState.AWAITING_PAYER,
        JobState.CANCELLED,
    }
    found = reader.find("txn-wait")
    assert found is not None and found.action is not None and found.attempts
    assert found.attempts[0].started_at.tzinfo is not None
    rich = reader.find("txn-rich")
    assert rich is not None and rich.lease_expires_at is not None
    assert dict(rich.metadata)["note"] == "naïve ✓"
    assert reader.find("txn-none") is None


def test_the_reader_converts_exactly_the_columns_the_store_converts() -> None:
    def times(table: object) -> set[str]:
        return {c.name for c in table.columns if isinstance(c.type, UTCDateTime)}  # type: ignore[attr-defined]

    assert times(JOBS) == sqlite_read.JOB_TIMES
    assert times(ATTEMPTS) == sqlite_read.ATTEMPT_TIMES
    assert {c.name for c in JOBS.columns if c.type.__class__.__name__ == "JSON"} == (
        sqlite_read.JOB_JSON
    )


@pytest.mark.parametrize(
    "make_url",
    [
        pytest.param(lambda p: f"sqlite:///{p.parent / 'new.db'}", id="a file not there yet"),
        pytest.param(lambda p: "sqlite:///:memory:", id="in memory"),
        pytest.param(lambda p: "sqlite://", id="no path"),
        pytest.param(lambda p: f"sqlite:///{p}?timeout=5", id="a query string"),
        pytest.param(lambda p: f"sqlite+pysqlite:///{p}", id="a driver name"),
        pytest.param(lambda p: "postgresql://u@localhost/db", id="postgresql"),
        pytest.param(lambda p: f"sqlite:///{p.parent}", id="a folder"),
    ],
)
def test_the_reader_declines_what_only_the_store_opens(
    store: SqlStore, url: str, make_url: object
) -> None:
    path = Path(url.removeprefix("sqlite:///"))
    assert SqliteJobReader.open(make_url(path)) is None  # type: ignore[operator]
    assert not (path.parent / "new.db").exists()  # declining created nothing


def _set_revision(url: str, revision: str | None) -> None:
    conn = sqlite3.connect(url.removeprefix("sqlite:///"))
    if revision is None:
        conn.execute("DROP TABLE alembic_version")
    else:
        conn.execute("UPDATE alembic_version SET version_num = ?", (revision,))
    conn.commit()
    conn.close()


@pytest.mark.parametrize("revision", ["0010", "9999", None])
def test_the_reader_declines_a_schema_other_than_its_own(
    store: SqlStore, url: str, revision: str | None
) -> None:
    assert revision != HEAD
    _set_revision(url, revision)
    assert SqliteJobReader.open(url) is None


def test_a_file_that_is_not_a_database_is_left_to_the_store(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database at all" * 100)
    assert SqliteJobReader.open(f"sqlite:///{junk}") is None
    assert junk.read_bytes() == b"not a database at all" * 100


def test_a_failure_while_reading_is_a_store_error_with_the_url(
    store: SqlStore, reader: SqliteJobReader
) -> None:
    store.insert(Queued(make_job("txn-x")))
    store.engine.dispose()
    conn = sqlite3.connect(str(store.engine.url.database))
    conn.execute("ALTER TABLE retry_attempts RENAME TO moved_away")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="reader.db failed: no such table: retry_attempts"):
        reader.find("txn-x")
