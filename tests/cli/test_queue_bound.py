"""`[queue] max_active` from the command line: validated with the key named, a full queue
evicts for a higher job, refuses a lower one (exit 3, nothing stored), a --from-file is all or
nothing, and the eviction shows in status, explain, events and stats."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.conftest import (
    Invoke,
    assert_error,
    assert_json_error,
    doc,
    jobs,
    ok,
    queue_args,
    queued,
)

FULL = {"PAYRETRY_QUEUE_MAX_ACTIVE": "2"}


@pytest.mark.parametrize("value", ["0", "-1", "many", "1.5", "1_000"])
def test_a_bad_max_active_in_the_environment_is_refused_naming_it(
    invoke: Invoke, value: str
) -> None:
    result = invoke(*queue_args("t1"), env={"PAYRETRY_QUEUE_MAX_ACTIVE": value})
    assert_error(result, 2, "PAYRETRY_QUEUE_MAX_ACTIVE")
    assert jobs_or_none(invoke) == []


@pytest.mark.parametrize("value", ["0", '"lots"', "true"])
def test_a_bad_max_active_in_the_file_names_the_key_and_line(
    invoke: Invoke, tmp_path: Path, value: str
) -> None:
    config = tmp_path / "c.toml"
    config.write_text(f"[queue]\nmax_active = {value}\n")
    result = invoke("--config", str(config), "config")
    assert_error(result, 2, "[queue] max_active", f"{config}, line 2")


def jobs_or_none(invoke: Invoke) -> list[str]:
    result = invoke("list", "--json")
    if result.exit_code != 0:
        return []
    return [j["transaction_id"] for j in doc(result)["jobs"]]


def test_config_shows_the_setting_and_its_source(invoke: Invoke) -> None:
    settings = doc(ok(invoke("config", "--json", env=FULL)))["settings"]
    (row,) = [r for r in settings if r["key"] == "queue.max_active"]
    assert row["value"] == 2 and row["source"] == "env PAYRETRY_QUEUE_MAX_ACTIVE"


def test_a_full_queue_evicts_for_a_higher_job_and_refuses_a_lower_one(invoke: Invoke) -> None:
    for txn, amount in (("t-small", "1.00"), ("t-mid", "5.00")):
        ok(invoke(*queue_args(txn, amount=amount), env=FULL))
    refused = invoke(*queue_args("t-tiny", "--json", amount="0.50"), env=FULL)
    error = assert_json_error(refused, 3, "queue_full")
    assert "would be the lowest" in error["message"] and "max_active" in error["message"]
    assert sorted(jobs_or_none(invoke)) == ["t-mid", "t-small"]

    big = doc(ok(invoke(*queue_args("t-big", "--json", amount="50.00"), env=FULL)))
    status = doc(ok(invoke("status", "t-small", "--json")))
    assert status["state"] == "evicted" and big["job_id"] in status["reason"]
    story = doc(ok(invoke("explain", "t-small", "--json")))
    (step,) = [s for s in story["story"] if s["kind"] == "evicted"]
    assert step["evicted_by_transaction"] == "t-big" and step["max_active"] == 2
    assert [e["type"] for e in story["events"]][-2:] == ["retry_evicted", "user_notification"]
    told = ok(invoke("explain", "t-small")).stdout
    assert "the queue was full ([queue] max_active = 2)" in told
    assert "retry_evicted for t-big (a full queue)" in told
    stats = doc(ok(invoke("stats", "--json")))
    assert stats["by_state"] == {"evicted": 1, "scheduled": 2}
    assert "evicted" in ok(invoke("stats")).stdout


def test_without_the_setting_nothing_is_bounded(invoke: Invoke) -> None:
    for n in range(3):
        queued(invoke, f"t-{n}")
    assert len(jobs(invoke)) == 3


def _file(path: Path, *amounts: str) -> Path:
    rows = [
        {
            "transaction_id": f"f-{n}",
            "user_id": "u",
            "amount": amount,
            "currency": "USD",
            "error_code": "processing_error",
        }
        for n, amount in enumerate(amounts, 1)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_a_file_that_does_not_fit_is_refused_whole_naming_its_lowest_rows(
    invoke: Invoke, tmp_path: Path
) -> None:
    ok(invoke(*queue_args("t-a", amount="3.00"), env=FULL))
    path = _file(tmp_path / "jobs.jsonl", "9.00", "1.00", "8.00")
    result = invoke("queue", "--from-file", str(path), env=FULL)
    assert_error(result, 3, "nothing written", "line 2: the queue is full: priority 100")
    assert "line 1" not in result.stderr and "line 3" not in result.stderr
    assert jobs_or_none(invoke) == ["t-a"]
    fits = _file(tmp_path / "fits.jsonl", "9.00", "8.00")
    assert doc(ok(invoke("queue", "--from-file", str(fits), "--json", env=FULL)))["created"] == 2
    assert doc(ok(invoke("status", "t-a", "--json")))["state"] == "evicted"
