"""payretry status, list, cancel and retry."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from payretry.store.sql import open_store
from tests.cli.conftest import (
    ATTEMPT_KEYS,
    JOB_KEYS,
    NOW,
    Clock,
    Invoke,
    assert_error,
    assert_json_error,
    doc,
    jobs,
    ok,
    queue_args,
    queued,
)

# status


def test_status_json(invoke: Invoke, clock: Clock) -> None:
    job = queued(invoke, "txn_s", window="1h", decline_code="reenter_transaction")
    status = doc(ok(invoke("status", "txn_s", "--json")))
    assert JOB_KEYS <= set(status)
    assert "created" not in status
    assert status["job_id"] == job["job_id"]
    assert status["state"] == "scheduled"
    assert status["expires_at"] == "2026-11-22T13:00:00Z"
    assert status["decline_code"] == "reenter_transaction"


def test_status_human(invoke: Invoke, clock: Clock) -> None:
    queued(invoke, "txn_s", "--metadata", "simulate=processing_error", customer="cus_1")
    before = ok(invoke("status", "txn_s")).stdout
    assert "retry job for txn_s" in before
    assert "scheduled" in before and "99.99 USD" in before and "cus_1" in before
    assert "0 of 3 (3 remaining)" in before
    assert "idempotency key" not in before  # no attempts table yet
    ok(invoke("retry", "txn_s"))
    after = ok(invoke("status", "txn_s")).stdout
    assert "1 of 3 (2 remaining)" in after
    assert "idempotency key" in after and "payretry:" in after


def test_status_unknown_is_not_found(invoke: Invoke) -> None:
    assert_error(invoke("status", "nope"), 4, "nope")
    error = assert_json_error(invoke("status", "nope", "--json"), 4, "not_found")
    assert "nope" in error["message"]


def test_status_shows_the_active_job_over_an_older_one(invoke: Invoke) -> None:
    queued(invoke, "txn_1")
    ok(invoke("cancel", "txn_1"))
    newer = queued(invoke, "txn_1", amount="5.00")
    status = doc(ok(invoke("status", "txn_1", "--json")))
    assert status["job_id"] == newer["job_id"]
    assert status["state"] == "scheduled"


# list


@pytest.fixture
def three_jobs(invoke: Invoke, clock: Clock) -> None:
    queued(invoke, "net", error_code="network_error", user_id="alice", amount="1.00")  # due now
    clock.tick(1)
    queued(invoke, "proc", user_id="bob", amount="2.00")  # due in 1m
    clock.tick(1)
    queued(invoke, "gone", user_id="alice", amount="3.00")
    ok(invoke("cancel", "gone"))


@pytest.mark.usefixtures("three_jobs")
def test_list_newest_first(invoke: Invoke) -> None:
    listed = doc(ok(invoke("list", "--json")))
    assert listed["count"] == 3
    assert [j["transaction_id"] for j in listed["jobs"]] == ["gone", "proc", "net"]
    assert all(JOB_KEYS <= set(j) for j in listed["jobs"])


@pytest.mark.usefixtures("three_jobs")
@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--state", "scheduled"), ["proc", "net"]),
        (("--state", "cancelled"), ["gone"]),
        (("--state", "succeeded"), []),
        (("--user-id", "alice"), ["gone", "net"]),
        (("--user-id", "alice", "--state", "scheduled"), ["net"]),
        (("--user-id", "nobody"), []),
        (("--due",), ["net"]),
        (("--limit", "1"), ["gone"]),
    ],
)
def test_list_filters(invoke: Invoke, args: tuple[str, ...], expected: list[str]) -> None:
    assert [j["transaction_id"] for j in jobs(invoke, *args)] == expected


@pytest.mark.usefixtures("three_jobs")
def test_list_due_follows_the_clock(invoke: Invoke, clock: Clock) -> None:
    clock.tick(120)
    # Claim order: priority (amount) desc.
    assert [j["transaction_id"] for j in jobs(invoke, "--due")] == ["proc", "net"]


@pytest.mark.usefixtures("three_jobs")
def test_list_human(invoke: Invoke) -> None:
    out = ok(invoke("list")).stdout
    for needle in ("net", "proc", "gone", "cancelled", "network_error", "2.00 USD", "0/3"):
        assert needle in out
    assert ok(invoke("list", "--state", "failed")).stdout.strip() == "No jobs match."


def test_list_bad_state_is_invalid(invoke: Invoke) -> None:
    assert_error(invoke("list", "--state", "bogus"), 2, "--state", "bogus")
    assert_json_error(invoke("list", "--state", "bogus", "--json"), 2, "invalid_input", "--state")


@pytest.mark.parametrize("limit", ["0", "-1", "many"])
def test_list_bad_limit_is_usage_error(invoke: Invoke, limit: str) -> None:
    result = invoke("list", "--limit", limit)
    assert result.exit_code == 2
    assert "--limit" in result.stderr
    assert "Traceback" not in result.stderr


# cancel


def test_cancel_then_cancel_again(invoke: Invoke, clock: Clock) -> None:
    queued(invoke, "txn_c", amount="42.00")
    result = ok(invoke("cancel", "txn_c"))
    assert (
        "Cancelled" in result.stdout and "txn_c" in result.stdout and "42.00 USD" in result.stdout
    )
    status = doc(ok(invoke("status", "txn_c", "--json")))
    assert status["state"] == "cancelled"
    assert status["retry_available"] is False
    assert status["attempts_remaining"] == 0
    assert_error(invoke("cancel", "txn_c"), 3, "cancelled")
    assert_json_error(invoke("cancel", "txn_c", "--json"), 3, "refused")


def test_cancel_json(invoke: Invoke) -> None:
    queued(invoke, "txn_c")
    cancelled = doc(ok(invoke("cancel", "txn_c", "--json")))
    assert JOB_KEYS <= set(cancelled)
    assert cancelled["state"] == "cancelled"
    assert cancelled["next_retry_at"] is None


def test_cancel_unknown_is_not_found(invoke: Invoke) -> None:
    assert_error(invoke("cancel", "nope"), 4, "nope")
    assert_json_error(invoke("cancel", "nope", "--json"), 4, "not_found")


def test_cancel_a_succeeded_job_is_refused(invoke: Invoke) -> None:
    queued(invoke, "txn_c", "--metadata", "simulate=succeeded")
    ok(invoke("retry", "txn_c"))
    assert_error(invoke("cancel", "txn_c"), 3, "succeeded")
    assert jobs(invoke)[0]["state"] == "succeeded"


# retry


def test_retry_counts_one_attempt_each_time(invoke: Invoke, clock: Clock) -> None:
    job = queued(invoke, "txn_r", "--metadata", "simulate=processing_error,succeeded")
    # Not due for another minute: a retry now goes ahead anyway.
    first = doc(ok(invoke("retry", "txn_r", "--json")))
    assert first["result"]["transaction_id"] == "txn_r"
    assert first["result"]["attempt"] == 1
    assert first["result"]["outcome"] == "rescheduled"
    assert first["result"]["state"] == "scheduled"
    assert first["result"]["error_code"] == "processing_error"
    assert first["job"]["attempt_count"] == 1
    assert first["job"]["attempts_remaining"] == 2
    # processing_error waits 5m before attempt 2.
    assert first["job"]["next_retry_at"] == "2026-11-22T12:05:00Z"
    (attempt,) = first["job"]["attempts"]
    assert ATTEMPT_KEYS <= set(attempt)
    assert attempt["number"] == 1
    assert attempt["outcome"] == "failed"
    assert attempt["error_code"] == "processing_error"
    assert attempt["started_at"] == "2026-11-22T12:00:00Z"
    assert attempt["idempotency_key"] == f"payretry:{job['job_id']}:1"

    clock.tick(10)  # a second retry of one transaction within 60 s is throttled, changing nothing
    assert_error(invoke("retry", "txn_r"), 3, "too many retries", "try again in 50s")
    throttled = assert_json_error(invoke("retry", "txn_r", "--json"), 3, "throttled")
    assert "transaction txn_r" in throttled["message"]
    assert doc(ok(invoke("status", "txn_r", "--json")))["attempt_count"] == 1
    clock.tick(50)
    second = doc(ok(invoke("retry", "txn_r", "--json")))
    assert second["result"]["attempt"] == 2
    assert second["result"]["outcome"] == "succeeded"
    assert second["job"]["state"] == "succeeded"
    assert [a["idempotency_key"] for a in second["job"]["attempts"]] == [
        f"payretry:{job['job_id']}:1",
        f"payretry:{job['job_id']}:2",
    ]
    assert second["job"]["retry_available"] is False

    assert_error(invoke("retry", "txn_r"), 3, "succeeded")
    assert_json_error(invoke("retry", "txn_r", "--json"), 3, "refused")
    assert doc(ok(invoke("status", "txn_r", "--json")))["attempt_count"] == 2


def test_retry_human(invoke: Invoke, clock: Clock) -> None:
    queued(invoke, "txn_r", "--metadata", "simulate=network_error")
    out = ok(invoke("retry", "txn_r")).stdout
    assert "Attempt 1 for txn_r: rescheduled (network_error); job scheduled" in out
    # After a failure the row of the new error decides: network_error waits 1m before attempt 2.
    assert "next retry at 2026-11-22T12:01:00Z" in out


def test_retry_until_exhausted(invoke: Invoke, clock: Clock) -> None:
    queued(invoke, "txn_x", "--metadata", "simulate=processing_error", error_code="network_error")
    outcomes = []
    for _ in range(3):
        outcomes.append(doc(ok(invoke("retry", "txn_x", "--json")))["result"])
        clock.tick(60)  # one retry now per transaction per minute ([throttle])
    assert [r["outcome"] for r in outcomes] == ["rescheduled", "rescheduled", "exhausted"]
    assert outcomes[-1]["state"] == "exhausted"
    assert_error(invoke("retry", "txn_x"), 3, "exhausted")


def test_retry_hard_failure_is_final(invoke: Invoke) -> None:
    queued(invoke, "txn_f", "--metadata", "simulate=card_declined:stolen_card")
    result = doc(ok(invoke("retry", "txn_f", "--json")))["result"]
    assert (result["outcome"], result["state"]) == ("failed", "failed")
    assert result["decline_code"] == "stolen_card"
    assert_error(invoke("retry", "txn_f"), 3)


def test_retry_after_the_window_closed_is_refused(invoke: Invoke, clock: Clock) -> None:
    queued(invoke, "txn_w", window="2m")
    clock.tick(180)
    assert_error(invoke("retry", "txn_w"), 3, "window")
    status = doc(ok(invoke("status", "txn_w", "--json")))
    assert (status["state"], status["attempt_count"]) == ("abandoned", 0)


def test_retry_a_cancelled_job_is_refused(invoke: Invoke) -> None:
    queued(invoke, "txn_c")
    ok(invoke("cancel", "txn_c"))
    assert_error(invoke("retry", "txn_c"), 3, "cancelled")


def test_retry_unknown_is_not_found(invoke: Invoke) -> None:
    assert_error(invoke("retry", "nope"), 4, "nope")
    assert_json_error(invoke("retry", "nope", "--json"), 4, "not_found")


def test_retry_unknown_processor_is_invalid(invoke: Invoke) -> None:
    queued(invoke, "txn_p")
    assert_error(invoke("retry", "txn_p", "--processor", "nope"), 2, "processor")
    assert doc(ok(invoke("status", "txn_p", "--json")))["attempt_count"] == 0


def test_queue_refused_after_the_transaction_was_paid(invoke: Invoke) -> None:
    queued(invoke, "txn_paid", "--metadata", "simulate=succeeded")
    ok(invoke("retry", "txn_paid"))
    result = invoke(*queue_args("txn_paid", "--metadata", "simulate=succeeded"))
    assert_error(result, 3, "already paid")
    assert len(jobs(invoke)) == 1


# a job another runner holds


def test_a_running_job_cannot_be_retried_or_cancelled(
    invoke: Invoke, clock: Clock, db_path: Path
) -> None:
    job = queued(invoke, "txn_busy", "--metadata", "simulate=succeeded", error_code="network_error")
    store = open_store(f"sqlite:///{db_path}")
    try:  # another runner claims it (lease 5m) and has not reported yet
        (claimed,) = store.claim(NOW, 1, timedelta(minutes=5))
    finally:
        store.close()
    assert claimed.job.id == job["job_id"]
    status = doc(ok(invoke("status", "txn_busy", "--json")))
    assert status["state"] == "running"
    assert status["retry_available"] is False
    assert_error(invoke("retry", "txn_busy"), 3, "in progress")
    assert_error(invoke("cancel", "txn_busy"), 3, "in progress")
    assert jobs(invoke, "--state", "running")[0]["transaction_id"] == "txn_busy"
    assert doc(ok(invoke("run-due", "--json")))["processed"] == 0
    # The lease expires; the next run rescues the job and attempts it with the same key.
    clock.tick(6 * 60)
    report = doc(ok(invoke("run-due", "--json")))
    assert report["rescued"] == 1
    assert [(r["transaction_id"], r["attempt"], r["outcome"]) for r in report["results"]] == [
        ("txn_busy", 1, "succeeded")
    ]
    (attempt,) = doc(ok(invoke("status", "txn_busy", "--json")))["attempts"]
    assert attempt["idempotency_key"] == claimed.idempotency_key
