"""explain and top, for jobs in every state, human and --json."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from tests.cli.conftest import Clock, Invoke, assert_error, doc, ok, queued


def story(invoke: Invoke, txn: str) -> list[dict[str, Any]]:
    document = doc(ok(invoke("explain", txn, "--json")))
    assert document["transaction_id"] == txn
    steps: list[dict[str, Any]] = document["story"]
    return steps


def test_a_job_that_walks_its_schedule_to_success(invoke: Invoke, clock: Clock) -> None:
    queued(invoke, "t1", "--metadata", "simulate=processing_error,succeeded")
    clock.tick(60.0)
    ok(invoke("run-due"))
    steps = story(invoke, "t1")
    assert [s["kind"] for s in steps] == ["queued", "policy", "attempt", "decision", "state"]
    assert "policy row 'processing_error'" in steps[1]["text"]
    assert steps[2]["outcome"] == "failed" and steps[2]["error_code"] == "processing_error"
    assert steps[2]["idempotency_key"].endswith(":1")
    assert "waits 5m" in steps[3]["text"] and steps[3]["next_retry_at"] == "2026-11-22T12:06:00Z"
    assert "scheduled: attempt 2 of 3 at 2026-11-22T12:06:00Z" in steps[4]["text"]
    clock.tick(300.0)
    ok(invoke("run-due"))
    steps = story(invoke, "t1")
    assert steps[-2]["kind"] == "attempt" and steps[-2]["outcome"] == "succeeded"
    assert steps[-1]["state"] == "succeeded"
    human = ok(invoke("explain", "t1")).stdout
    assert "Attempt 1 at 2026-11-22T12:01:00Z failed with processing_error" in human
    assert "Attempt 2 at 2026-11-22T12:06:00Z succeeded" in human


@pytest.mark.parametrize(
    ("plan", "options", "state", "needle"),
    [
        ("card_declined:stolen_card", {}, "failed", "never retried"),
        (
            "processing_error,processing_error,processing_error",
            {},
            "exhausted",
            "no attempts were left",
        ),
        ("processing_error,processing_error", {"window": "10m"}, "abandoned", "payment window"),
    ],
)
def test_why_it_stopped(
    invoke: Invoke, clock: Clock, plan: str, options: dict[str, str], state: str, needle: str
) -> None:
    queued(invoke, "t1", "--metadata", f"simulate={plan}", **options)
    for minutes in (1, 5, 30):  # processing_error waits 1m, 5m, 30m
        clock.tick(minutes * 60.0)
        ok(invoke("run-due"))
    steps = story(invoke, "t1")
    assert steps[-1]["state"] == state
    assert any(needle in s["text"] for s in steps if s["kind"] == "decision")
    if "window" in options:
        assert any(s["kind"] == "window" for s in steps)


def test_cancelled_and_scheduled_and_unknown(invoke: Invoke, clock: Clock) -> None:
    queued(invoke, "t1")
    assert story(invoke, "t1")[-1]["state"] == "scheduled"
    ok(invoke("cancel", "t1"))
    last = story(invoke, "t1")[-1]
    assert last["state"] == "cancelled" and "cancelled by an operator" in last["text"]
    assert_error(invoke("explain", "nope"), 4, "nope")


def test_a_job_mid_attempt_says_its_outcome_is_pending(invoke: Invoke, clock: Clock) -> None:
    from payretry.store.sql import open_store

    queued(invoke, "t1", error_code="network_error")
    url = invoke("config", "--json")  # the db the fixture uses
    db = next(s["value"] for s in doc(url)["settings"] if s["key"] == "database.url")
    assert "***" not in db
    store = open_store(db)
    try:
        from payretry.clock import utcnow

        assert store.claim(utcnow(), 1, timedelta(minutes=5))
    finally:
        store.close()
    steps = story(invoke, "t1")
    assert steps[-2]["outcome"] == "pending" and "same key" in steps[-2]["text"]
    assert steps[-1]["state"] == "running"


def test_top_renders_the_stats_and_stops(invoke: Invoke, clock: Clock) -> None:
    queued(invoke, "t1")
    queued(invoke, "t2", amount="10", currency="JPY")
    out = ok(invoke("top", "--iterations", "1")).stdout
    assert "2 job(s)" in out and "scheduled" in out and "JPY" in out and "99.99" in out
    assert "success rate" in out
