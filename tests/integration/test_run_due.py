"""run-due on real SQLite files, with the clock driven by freezegun.

Most scenarios go through the CLI (queue, run-due, status, cancel, retry), as an operator or cron
would; the crash scenario drives the service's Runner with a processor that fails mid-batch.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from freezegun import freeze_time
from typer.testing import CliRunner

from payretry.cli import app
from payretry.clock import utcnow
from payretry.domain.changes import Queued
from payretry.domain.durations import iso
from payretry.domain.models import Job, JobState
from payretry.domain.policy import RetryPolicy
from payretry.domain.results import AttemptRequest, AttemptResult
from payretry.processors.simulated import SimulatedProcessor
from payretry.service.runner import Runner
from payretry.store.sql import SqlStore, open_store

T0 = datetime(2026, 11, 22, 12, 0, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
SECOND = timedelta(seconds=1)


class Clock:
    """The frozen wall clock: `at(+5m)` moves it to T0 + 5 minutes."""

    def __init__(self, factory: Any) -> None:
        self._factory = factory

    def at(self, offset: timedelta) -> datetime:
        self._factory.move_to(T0 + offset)
        assert utcnow() == T0 + offset
        return T0 + offset


@pytest.fixture
def clock() -> Iterator[Clock]:
    # pytest's own timer stays real, so --durations reports real seconds.
    with freeze_time(T0, tick=False, ignore=["_pytest.timing"]) as factory:
        yield Clock(factory)


@dataclass
class Cli:
    url: str
    runner: CliRunner

    def run(self, *args: str, code: int = 0) -> dict[str, Any]:
        """Invoke `payretry --db URL ARGS --json`; check the exit code; return the document."""
        result = self.runner.invoke(app, ["--db", self.url, *args, "--json"])
        assert result.exit_code == code, (args, result.stdout, result.stderr)
        document: dict[str, Any] = json.loads(result.stdout)
        return document

    def queue(
        self, transaction_id: str, *extra: str, amount: str = "10.00", code: int = 0
    ) -> dict[str, Any]:
        return self.run(
            "queue",
            transaction_id,
            "--user-id",
            "user-1",
            "--amount",
            amount,
            "--currency",
            "USD",
            *extra,
            code=code,
        )

    def run_due(self, *extra: str) -> dict[str, Any]:
        return self.run("run-due", *extra)

    def status(self, transaction_id: str) -> dict[str, Any]:
        return self.run("status", transaction_id)


@pytest.fixture
def cli(db_url: str) -> Cli:
    return Cli(db_url, CliRunner())


def _nothing_due(cli: Cli) -> None:
    report = cli.run_due()
    assert report["processed"] == 0 and report["results"] == [], report


def _one_result(report: dict[str, Any]) -> dict[str, Any]:
    assert len(report["results"]) == 1, report
    result: dict[str, Any] = report["results"][0]
    return result


# -- the whole schedule -----------------------------------------------------------------------


def test_processing_error_walks_1m_5m_30m_then_exhausts(cli: Cli, clock: Clock) -> None:
    queued = cli.queue(
        "txn-walk",
        "--error-code",
        "processing_error",
        "--metadata",
        "simulate=processing_error,processing_error,processing_error",
    )
    assert queued["created"] is True
    assert queued["next_retry_at"] == iso(T0 + MINUTE)
    job_id = queued["job_id"]

    due_times = [MINUTE, 6 * MINUTE, 36 * MINUTE]  # waits of 1m, 5m, 30m
    for number, due in enumerate(due_times, start=1):
        clock.at(due - SECOND)
        _nothing_due(cli)
        clock.at(due)
        report = cli.run_due()
        result = _one_result(report)
        assert result["transaction_id"] == "txn-walk"
        assert result["attempt"] == number
        assert report["processed"] == 1
        status = cli.status("txn-walk")
        assert status["attempt_count"] == number
        if number < 3:
            assert result["outcome"] == "rescheduled" and result["state"] == "scheduled"
            assert report["rescheduled"] == 1
            assert status["next_retry_at"] == iso(T0 + due_times[number])
            assert status["attempts_remaining"] == 3 - number and status["retry_available"]
        else:
            assert result["outcome"] == "exhausted" and result["state"] == "exhausted"
            assert report["exhausted"] == 1

    clock.at(48 * 60 * MINUTE)
    _nothing_due(cli)
    final = cli.status("txn-walk")
    assert final["state"] == "exhausted"
    assert final["next_retry_at"] is None
    assert final["attempts_remaining"] == 0 and final["retry_available"] is False
    attempts = final["attempts"]
    assert [a["idempotency_key"] for a in attempts] == [
        f"payretry:{job_id}:1",
        f"payretry:{job_id}:2",
        f"payretry:{job_id}:3",
    ]
    assert [a["number"] for a in attempts] == [1, 2, 3]
    assert [a["outcome"] for a in attempts] == ["failed"] * 3
    assert [a["error_code"] for a in attempts] == ["processing_error"] * 3
    assert [a["started_at"] for a in attempts] == [iso(T0 + d) for d in due_times]


def test_success_on_the_first_retry(cli: Cli, clock: Clock) -> None:
    job_id = cli.queue(
        "txn-ok", "--error-code", "network_error", "--metadata", "simulate=succeeded"
    )["job_id"]
    report = cli.run_due()  # network_error waits 0s before attempt 1
    assert report["processed"] == 1 and report["succeeded"] == 1
    assert _one_result(report)["state"] == "succeeded"
    status = cli.status("txn-ok")
    assert status["state"] == "succeeded"
    assert status["attempt_count"] == 1 and status["retry_available"] is False
    [attempt] = status["attempts"]
    assert attempt["outcome"] == "succeeded"
    assert attempt["idempotency_key"] == f"payretry:{job_id}:1"
    assert attempt["reference"]
    clock.at(60 * MINUTE)
    _nothing_due(cli)
    # A paid transaction is never queued again.
    cli.queue("txn-ok", "--error-code", "network_error", code=3)


# -- the payment window -------------------------------------------------------------------------


def test_next_retry_after_the_window_is_abandoned_with_a_reason(cli: Cli, clock: Clock) -> None:
    cli.queue(
        "txn-window",
        "--error-code",
        "processing_error",
        "--window",
        "10m",
        "--metadata",
        "simulate=processing_error,processing_error,succeeded",
    )
    clock.at(MINUTE)
    first = _one_result(cli.run_due())
    assert first["outcome"] == "rescheduled"  # attempt 2 at +6m is inside the window
    clock.at(6 * MINUTE)
    report = cli.run_due()
    second = _one_result(report)
    assert second["attempt"] == 2
    assert second["outcome"] == "abandoned" and second["state"] == "abandoned"
    assert report["abandoned"] == 1
    assert report["processed"] == 1  # the attempt was made, then the window ruled out another
    status = cli.status("txn-window")
    assert status["state"] == "abandoned"
    assert status["attempt_count"] == 2 and len(status["attempts"]) == 2
    assert status["next_retry_at"] is None
    assert "payment window" in status["reason"]
    assert iso(T0 + 10 * MINUTE) in status["reason"]
    clock.at(36 * MINUTE)
    _nothing_due(cli)


def test_window_that_closes_while_the_job_waits(cli: Cli, clock: Clock) -> None:
    cli.queue(
        "txn-lapse",
        "--error-code",
        "processing_error",
        "--window",
        "2m",
        "--metadata",
        "simulate=succeeded",
    )
    cli.queue("txn-other", "--error-code", "processing_error", "--metadata", "simulate=succeeded")
    clock.at(3 * MINUTE)  # due since +1m, but nobody ran run-due before the window closed
    report = cli.run_due()
    by_txn = {r["transaction_id"]: r for r in report["results"]}
    assert by_txn["txn-lapse"]["outcome"] == "abandoned"
    assert by_txn["txn-other"]["outcome"] == "succeeded"
    assert report["abandoned"] == 1 and report["processed"] == 1
    status = cli.status("txn-lapse")
    assert status["state"] == "abandoned"
    assert status["attempts"] == [] and status["attempt_count"] == 0  # never sent
    assert "window" in status["reason"]
    cli.run("retry", "txn-lapse", code=3)


def test_retry_now_after_the_window_closed_is_refused(cli: Cli, clock: Clock) -> None:
    cli.queue("txn-late", "--error-code", "processing_error", "--window", "5m")
    clock.at(5 * MINUTE + SECOND)
    error = cli.run("retry", "txn-late", code=3)["error"]
    assert error["kind"] == "refused" and "window" in error["message"]
    status = cli.status("txn-late")
    assert status["state"] == "abandoned" and status["attempts"] == []


# -- priority ----------------------------------------------------------------------------------


def test_priority_order_with_limit(cli: Cli, clock: Clock) -> None:
    ok = ("--error-code", "processing_error", "--metadata", "simulate=succeeded")
    cli.queue("txn-5", *ok, amount="5.00")
    cli.queue("txn-500", *ok, amount="500.00")
    cli.queue("txn-explicit", *ok, "--priority", "1000000", amount="1.00")
    cli.queue("txn-50", *ok, amount="50.00")
    clock.at(30 * SECOND)
    _nothing_due(cli)
    clock.at(MINUTE)
    preview = cli.run("run-due", "--dry-run", "--limit", "3")
    assert [j["transaction_id"] for j in preview["would_attempt"]] == [
        "txn-explicit",
        "txn-500",
        "txn-50",
    ]
    first = cli.run_due("--limit", "2")
    assert [r["transaction_id"] for r in first["results"]] == ["txn-explicit", "txn-500"]
    assert first["processed"] == 2
    assert cli.status("txn-50")["state"] == "scheduled"
    second = cli.run_due("--limit", "1")
    assert [r["transaction_id"] for r in second["results"]] == ["txn-50"]
    rest = cli.run_due()
    assert [r["transaction_id"] for r in rest["results"]] == ["txn-5"]
    for txn in ("txn-5", "txn-50", "txn-500", "txn-explicit"):
        assert cli.status(txn)["state"] == "succeeded"


# -- operator actions ------------------------------------------------------------------------


def test_cancel_stops_further_attempts(cli: Cli, clock: Clock) -> None:
    cli.queue(
        "txn-cancel",
        "--error-code",
        "processing_error",
        "--metadata",
        "simulate=processing_error,succeeded",
    )
    clock.at(MINUTE)
    assert _one_result(cli.run_due())["outcome"] == "rescheduled"
    cancelled = cli.run("cancel", "txn-cancel")
    assert cancelled["state"] == "cancelled" and cancelled["next_retry_at"] is None
    clock.at(60 * MINUTE)
    _nothing_due(cli)
    cli.run("retry", "txn-cancel", code=3)
    cli.run("cancel", "txn-cancel", code=3)
    status = cli.status("txn-cancel")
    assert status["state"] == "cancelled" and len(status["attempts"]) == 1


def test_retry_now_counts_an_attempt(cli: Cli, clock: Clock) -> None:
    job_id = cli.queue(
        "txn-now",
        "--error-code",
        "processing_error",
        "--metadata",
        "simulate=processing_error,succeeded",
    )["job_id"]
    # Not due until +1m, but an operator (or the customer) asks for a retry now.
    first = cli.run("retry", "txn-now")
    assert first["result"]["attempt"] == 1 and first["result"]["outcome"] == "rescheduled"
    assert first["job"]["attempt_count"] == 1
    assert first["job"]["attempts_remaining"] == 2
    assert first["job"]["next_retry_at"] == iso(T0 + 5 * MINUTE)  # the wait before attempt 2
    assert first["job"]["attempts"][0]["idempotency_key"] == f"payretry:{job_id}:1"
    clock.at(MINUTE)
    _nothing_due(cli)  # the original +1m slot was used by the manual retry
    clock.at(2 * MINUTE)
    second = cli.run("retry", "txn-now")
    assert second["result"]["attempt"] == 2 and second["result"]["state"] == "succeeded"
    assert [a["idempotency_key"] for a in second["job"]["attempts"]] == [
        f"payretry:{job_id}:1",
        f"payretry:{job_id}:2",
    ]
    cli.run("retry", "txn-now", code=3)
    cli.run("retry", "txn-unknown", code=4)


# -- declines ----------------------------------------------------------------------------------


def test_soft_decline_retries_and_a_hard_decline_after_an_attempt_fails(
    cli: Cli, clock: Clock
) -> None:
    soft = ("--error-code", "card_declined", "--decline-code", "do_not_honor")
    cli.queue("txn-soft", *soft, "--metadata", "simulate=card_declined:do_not_honor,succeeded")
    queued = cli.queue("txn-hard", *soft, "--metadata", "simulate=card_declined:stolen_card")
    assert queued["next_retry_at"] == iso(T0 + 24 * 60 * MINUTE)  # do_not_honor waits 24h
    assert queued["max_attempts"] == 2
    # card_declined on its own (no soft decline code) is never retried: refused, nothing stored.
    cli.queue("txn-declined", "--error-code", "card_declined", code=3)
    cli.run("status", "txn-declined", code=4)

    clock.at(24 * 60 * MINUTE - SECOND)
    _nothing_due(cli)
    clock.at(24 * 60 * MINUTE)
    report = cli.run_due()
    by_txn = {r["transaction_id"]: r for r in report["results"]}
    assert by_txn["txn-soft"]["outcome"] == "rescheduled"
    assert by_txn["txn-soft"]["next_retry_at"] == iso(T0 + 96 * 60 * MINUTE)  # then 72h
    assert by_txn["txn-hard"]["outcome"] == "failed" and by_txn["txn-hard"]["state"] == "failed"
    assert report["failed"] == 1 and report["rescheduled"] == 1
    hard = cli.status("txn-hard")
    assert hard["state"] == "failed" and hard["next_retry_at"] is None
    assert "stolen_card" in hard["reason"] and "never retried" in hard["reason"]
    assert [a["decline_code"] for a in hard["attempts"]] == ["stolen_card"]

    clock.at(96 * 60 * MINUTE)
    assert [r["transaction_id"] for r in cli.run_due()["results"]] == ["txn-soft"]
    assert cli.status("txn-soft")["state"] == "succeeded"
    assert cli.status("txn-hard")["state"] == "failed"


# -- a crash mid-attempt, through the service --------------------------------------------------


class CrashOnce:
    """The simulated processor, except that the first attempt of `crash_key` raises (a runner
    killed mid-call: nobody knows whether the charge went through)."""

    name = "crash-once"
    needs_history = False
    rate: float | None = None

    def __init__(self, inner: SimulatedProcessor, crash_key: str) -> None:
        self.inner = inner
        self.crash_key = crash_key
        self.seen: list[str] = []

    def attempt(self, request: AttemptRequest) -> AttemptResult:
        self.seen.append(request.idempotency_key)
        result = self.inner.attempt(request)
        if (
            request.idempotency_key == self.crash_key
            and self.seen.count(request.idempotency_key) == 1
        ):
            raise ConnectionResetError("runner lost the processor mid-call")
        return result

    def close(self) -> None:
        self.inner.close()


def test_crash_mid_batch_resends_the_same_key_after_the_lease(
    db_url: str, tmp_path: Path, clock: Clock
) -> None:
    store = open_store(db_url)
    ledger = str(tmp_path / "ledger.db")
    policy = RetryPolicy.standard()
    try:
        store.insert_many(
            [
                Queued(j)
                for j in [_job(f"txn-{n}", priority=10 - n, simulate="succeeded") for n in range(3)]
            ]
        )
        first, crashing, third = (store.find(f"txn-{n}") for n in range(3))
        assert first is not None and crashing is not None and third is not None
        processor = CrashOnce(SimulatedProcessor(ledger=ledger), f"payretry:{crashing.id}:1")
        runner = Runner(store, policy, processor, clock=utcnow, lease_for=5 * MINUTE, batch_size=10)
        with pytest.raises(ConnectionResetError):
            runner.run_due()
        assert _state(store, "txn-0") is JobState.SUCCEEDED  # recorded before the crash
        assert _state(store, "txn-1") is JobState.RUNNING  # unknown outcome: stays leased
        assert _state(store, "txn-2") is JobState.SCHEDULED  # never sent: released
        assert _keys(store, "txn-2") == []

        clock.at(4 * MINUTE)  # the lease still holds: the crashed job is left alone
        report = runner.run_due()
        assert report.rescued == 0 and report.processed == 1
        assert _state(store, "txn-1") is JobState.RUNNING

        clock.at(5 * MINUTE + SECOND)
        report = runner.run_due()
        assert report.rescued == 1 and report.processed == 1
        assert [_state(store, f"txn-{n}") for n in range(3)] == [JobState.SUCCEEDED] * 3
        # The crashed attempt was re-sent with its own key, and counted once.
        assert _keys(store, "txn-1") == [f"payretry:{crashing.id}:1"]
        assert processor.seen.count(f"payretry:{crashing.id}:1") == 2
        assert processor.inner.replays == 1  # the processor saw the key again and did not charge
        processor.close()
    finally:
        store.close()
    with sqlite3.connect(ledger) as conn:
        keys = [row[0] for row in conn.execute("SELECT idempotency_key FROM charges")]
    conn.close()
    assert sorted(keys) == sorted(f"payretry:{job.id}:1" for job in (first, crashing, third))


class CrashAlways(CrashOnce):
    """A poison job's processor: every attempt of `crash_key` reaches the processor (the
    ledger records the key), and then the runner dies."""

    def attempt(self, request: AttemptRequest) -> AttemptResult:
        self.seen.append(request.idempotency_key)
        result = self.inner.attempt(request)
        if request.idempotency_key == self.crash_key:
            raise ConnectionResetError("runner lost the processor mid-call, again")
        return result


def test_a_poison_job_is_parked_after_its_rescues_and_an_operator_retry_charges_once(
    db_url: str, tmp_path: Path, clock: Clock
) -> None:
    """Its runner dies on every attempt: rescued `max_rescues` times, the job is parked on the
    next lapse (an event and the reason say so) instead of being re-sent forever; an operator's
    `retry` re-sends the same key, so the processor replays and charges nothing new."""
    from payretry.service.explain import explain
    from payretry.service.operations import Operations
    from payretry.service.views import job_events

    store = open_store(db_url)
    ledger = str(tmp_path / "ledger.db")
    policy = RetryPolicy.standard()
    try:
        store.insert_many([Queued(_job("txn-poison", priority=1, simulate="succeeded"))])
        poison = store.find("txn-poison")
        assert poison is not None
        key = f"payretry:{poison.id}:1"
        processor = CrashAlways(SimulatedProcessor(ledger=ledger), key)
        runner = Runner(store, policy, processor, clock=utcnow, lease_for=5 * MINUTE, max_rescues=2)
        reports = []
        for n in range(3):  # the first send, then two rescues: each run dies mid-call
            clock.at(n * (5 * MINUTE + SECOND))
            with pytest.raises(ConnectionResetError):
                runner.run_due()
        clock.at(3 * (5 * MINUTE + SECOND))
        reports.append(runner.run_due())  # the third lapse: parked, nothing sent
        assert reports[0].rescued == 0 and reports[0].counts["parked"] == 1
        assert reports[0].as_dict()["parked"] == 1 and reports[0].processed == 0
        parked = store.find("txn-poison")
        assert parked is not None and parked.state is JobState.PARKED
        assert processor.seen.count(key) == 3
        assert runner.run_due().processed == 0  # stays parked: never sent again by itself
        story = [step.text for step in explain(parked, policy)]
        assert "sent 3 times without an outcome" in story[-1]
        events = [e["type"] for e in job_events(store, parked.id, [])]
        assert events[-1] == "retry_parked"

        operator = Operations(
            store,
            policy,
            execution=Runner(
                store, policy, processor.inner, clock=utcnow, lease_for=5 * MINUTE
            ).execution,
        )
        result = operator.retry_now("txn-poison", utcnow())
        assert result.outcome == "succeeded" and result.attempt == 1
        assert _keys(store, "txn-poison") == [key]
        processor.close()
    finally:
        store.close()
    with sqlite3.connect(ledger) as conn:
        rows = conn.execute("SELECT idempotency_key, sends FROM charges").fetchall()
    conn.close()
    assert rows == [(key, 4)]  # one charge, sent four times: three replays


def _job(transaction_id: str, *, priority: int, simulate: str) -> Job:
    from payretry.domain.money import Money
    from payretry.service.operations import new_job_id

    return Job(
        id=new_job_id(),
        transaction_id=transaction_id,
        user_id="user-1",
        money=Money(1000, "USD"),
        error_code="processing_error",
        decline_code=None,
        error_message=None,
        state=JobState.SCHEDULED,
        attempt_count=0,
        max_attempts=3,
        next_retry_at=T0,
        created_at=T0,
        updated_at=T0,
        expires_at=None,
        priority=priority,
        metadata={"simulate": simulate},
    )


def _state(store: SqlStore, transaction_id: str) -> JobState:
    job = store.find(transaction_id)
    assert job is not None
    state: JobState = job.state
    return state


def _keys(store: SqlStore, transaction_id: str) -> list[str]:
    job = store.find(transaction_id)
    assert job is not None
    return [a.idempotency_key for a in job.attempts]
