"""payretry run-due and stats."""

from __future__ import annotations

from typing import Any

import pytest

from tests.cli.conftest import Clock, Invoke, assert_error, doc, jobs, ok, queued

COUNT_KEYS = ("processed", "succeeded", "rescheduled", "failed", "exhausted", "abandoned")


@pytest.fixture
def mixed(invoke: Invoke, clock: Clock) -> None:
    """Six jobs queued at 12:00; at 12:02 five are due and one is past its window.

    Amounts (so priorities) differ, so the claim order is known: fail > resched > ok > exhaust.
    """
    sim = "--metadata"
    queued(invoke, "ok", sim, "simulate=succeeded", error_code="network_error", amount="30.00")
    queued(invoke, "resched", sim, "simulate=processing_error", amount="40.00")
    queued(invoke, "fail", sim, "simulate=card_declined:stolen_card", amount="50.00")
    # A cap of 1 when queued: the one attempt fails, so the job is exhausted.
    capped = invoke(
        "queue",
        "exhaust",
        "--error-code",
        "network_error",
        "--user-id",
        "u",
        "--amount",
        "20.00",
        "--currency",
        "USD",
        "--metadata",
        "simulate=network_error",
        env={"PAYRETRY_MAX_ATTEMPTS": "1"},
    )
    ok(capped)
    queued(invoke, "late", window="90s", amount="60.00")  # first retry 12:01, window ends 12:01:30
    queued(invoke, "later", error_code="insufficient_funds", amount="70.00")  # due tomorrow
    clock.tick(120)


@pytest.mark.usefixtures("mixed")
def test_run_due_json_counts_and_results(invoke: Invoke) -> None:
    report = doc(ok(invoke("run-due", "--json")))
    assert {k: report[k] for k in COUNT_KEYS} == {
        "processed": 4,
        "succeeded": 1,
        "rescheduled": 1,
        "failed": 1,
        "exhausted": 1,
        "abandoned": 1,
    }
    results = report["results"]
    for result in results:
        assert {"transaction_id", "attempt", "outcome", "state"} <= set(result)
    by_txn = {r["transaction_id"]: r for r in results}
    assert set(by_txn) == {"ok", "resched", "fail", "exhaust", "late"}
    assert {t: (r["outcome"], r["state"], r["attempt"]) for t, r in by_txn.items()} == {
        "ok": ("succeeded", "succeeded", 1),
        "resched": ("rescheduled", "scheduled", 1),
        "fail": ("failed", "failed", 1),
        "exhaust": ("exhausted", "exhausted", 1),
        "late": ("abandoned", "abandoned", 1),
    }
    attempted = [r["transaction_id"] for r in results if r["outcome"] != "abandoned"]
    assert attempted == ["fail", "resched", "ok", "exhaust"]  # priority order
    states = {j["transaction_id"]: j["state"] for j in jobs(invoke)}
    assert states == {
        "ok": "succeeded",
        "resched": "scheduled",
        "fail": "failed",
        "exhaust": "exhausted",
        "late": "abandoned",
        "later": "scheduled",
    }
    again = doc(ok(invoke("run-due", "--json")))
    assert again["processed"] == 0 and again["results"] == []


@pytest.mark.usefixtures("mixed")
def test_run_due_dry_run_changes_nothing(invoke: Invoke) -> None:
    before = jobs(invoke)
    preview = doc(ok(invoke("run-due", "--dry-run", "--json")))
    assert preview["dry_run"] is True
    would = [j["transaction_id"] for j in preview["would_attempt"]]
    assert {"ok", "resched", "fail", "exhaust"} <= set(would)
    assert "later" not in would
    assert jobs(invoke) == before
    human = ok(invoke("run-due", "--dry-run"))
    assert "would be attempted" in human.stdout and "resched" in human.stdout
    assert jobs(invoke) == before
    assert doc(ok(invoke("run-due", "--json")))["processed"] == 4


@pytest.mark.usefixtures("mixed")
def test_run_due_limit_takes_the_highest_priority(invoke: Invoke) -> None:
    report = doc(ok(invoke("run-due", "--limit", "2", "--json")))
    assert report["processed"] == 2
    attempted = [r["transaction_id"] for r in report["results"] if r["outcome"] != "abandoned"]
    assert attempted == ["fail", "resched"]
    assert {j["transaction_id"]: j["attempt_count"] for j in jobs(invoke, "--due")} == {
        "ok": 0,
        "exhaust": 0,
    }


@pytest.mark.usefixtures("mixed")
def test_run_due_human(invoke: Invoke) -> None:
    out = ok(invoke("run-due")).stdout
    for needle in ("attempts", "resched", "rescheduled", "stolen_card", "exhausted", "late"):
        assert needle in out
    assert "Processed 4 job(s): 1 succeeded, 1 rescheduled, 1 failed, 1 exhausted" in out
    assert "1 abandoned" in out


def test_run_due_with_nothing_due(invoke: Invoke, clock: Clock) -> None:
    queued(invoke, "not_yet")
    assert ok(invoke("run-due")).stdout.strip() == "Processed 0 job(s)."
    assert ok(invoke("run-due", "--dry-run")).stdout.strip() == "Nothing is due."
    report = doc(ok(invoke("run-due", "--json")))
    assert {k: report[k] for k in COUNT_KEYS} == dict.fromkeys(COUNT_KEYS, 0)
    assert report["results"] == []
    assert jobs(invoke)[0]["attempt_count"] == 0


def test_run_due_walks_a_whole_schedule(invoke: Invoke, clock: Clock) -> None:
    queued(invoke, "walk", "--metadata", "simulate=processing_error")
    seen: list[tuple[str, str | None]] = []
    for wait in (60, 300, 1800):
        clock.tick(wait)
        report = doc(ok(invoke("run-due", "--json")))
        (result,) = report["results"]
        seen.append((result["outcome"], result["next_retry_at"]))
    assert seen == [
        ("rescheduled", "2026-11-22T12:06:00Z"),
        ("rescheduled", "2026-11-22T12:36:00Z"),
        ("exhausted", None),
    ]


def test_run_due_bad_options(invoke: Invoke) -> None:
    assert invoke("run-due", "--limit", "0").exit_code == 2
    assert_error(invoke("run-due", "--processor", "nope"), 2, "processor")


# stats


def test_stats_empty(invoke: Invoke) -> None:
    stats = doc(ok(invoke("stats", "--json")))
    assert stats["total"] == 0
    assert stats["by_state"] == {}
    assert stats["pending_amount_minor"] == {}
    assert stats["success_rate"] is None
    assert "Success rate: -" in ok(invoke("stats")).stdout


def _stats(invoke: Invoke) -> dict[str, Any]:
    document: dict[str, Any] = doc(ok(invoke("stats", "--json")))
    return document


@pytest.mark.usefixtures("mixed")
def test_stats_json(invoke: Invoke) -> None:
    queued(invoke, "yen", amount="1000", currency="JPY")
    ok(invoke("run-due"))
    stats = _stats(invoke)
    for key in ("total", "by_state", "pending_amount_minor", "by_error_code", "success_rate"):
        assert key in stats
    assert stats["total"] == 7
    assert stats["by_state"] == {
        "abandoned": 1,
        "exhausted": 1,
        "failed": 1,
        "scheduled": 3,
        "succeeded": 1,
    }
    # scheduled: resched 40.00 + later 70.00 USD; yen 1000 JPY.
    assert stats["pending_amount_minor"] == {"USD": 11000, "JPY": 1000}
    assert stats["by_error_code"]["processing_error"] >= 2
    assert stats["by_error_code"]["network_error"] >= 2
    # 4 attempts, 1 success.
    assert stats["success_rate"] == pytest.approx(0.25)


@pytest.mark.usefixtures("mixed")
def test_stats_human(invoke: Invoke) -> None:
    ok(invoke("run-due"))
    out = ok(invoke("stats")).stdout
    for needle in ("6 job(s)", "scheduled", "pending", "USD", "110.00", "Success rate: 25.0%"):
        assert needle in out
