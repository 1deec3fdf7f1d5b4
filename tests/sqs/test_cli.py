"""The commands in sqs mode: `sqs setup`, `queue` and `run-due` dispatching, `stats` with the queue
depth, and the dead-letter queue: a poison message ends there after maxReceiveCount receives,
`sqs dlq list` shows it with its job, `sqs dlq redrive` sends a repaired one back."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from payretry.cli import app
from payretry.clock import utcnow
from payretry.domain.models import JobState
from payretry.processors.simulated import SimulatedProcessor
from payretry.service.dispatcher import Dispatcher
from payretry.store.sql import SqlStore, open_store
from tests.daemon.helpers import ledger_rows, wait_for
from tests.sqs.conftest import Running, Sqs, build_worker
from tests.sqs.test_dispatch import queue_one


@pytest.fixture
def cli(
    sqs: Sqs, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> Any:  # the invoke function: (*args) -> (exit code, parsed JSON or text)
    for name, value in sqs.variables().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("PAYRETRY_DATABASE_URL", db_url)
    runner = CliRunner()
    logger = logging.getLogger("payretry")
    saved = (list(logger.handlers), logger.level, logger.propagate)

    def invoke(*args: str) -> tuple[int, Any]:
        try:
            result = runner.invoke(app, list(args))
        finally:  # the command logged to the runner's stderr, closed now: log as before
            logger.handlers[:], logger.level, logger.propagate = saved
        out = result.stdout
        try:
            return result.exit_code, json.loads(out)
        except ValueError:
            return result.exit_code, out + result.stderr

    return invoke


def test_setup_creates_both_queues_once_with_the_redrive_policy(
    sqs: Sqs, monkeypatch: pytest.MonkeyPatch, cli: Any
) -> None:
    monkeypatch.setenv("PAYRETRY_ENV", sqs.env + "-new")
    code, first = cli("sqs", "setup", "--json")
    assert code == 0, first
    assert first["queue"] == f"payments-retry-{sqs.env}-new"
    assert first["dead_letter_queue"] == f"payments-retry-{sqs.env}-new-dlq"
    assert first["queue_created"] and first["dead_letter_queue_created"]
    assert first["redrive_policy"]["maxReceiveCount"] == 5
    code, again = cli("sqs", "setup", "--json")
    assert code == 0 and not again["queue_created"] and not again["dead_letter_queue_created"]
    assert again["redrive_policy"] == first["redrive_policy"]
    retention = {
        url: int(
            sqs.client.get_queue_attributes(
                QueueUrl=url, AttributeNames=["MessageRetentionPeriod"]
            )["Attributes"]["MessageRetentionPeriod"]
        )
        for url in (first["queue_url"], first["dead_letter_queue_url"])
    }
    assert retention[first["dead_letter_queue_url"]] > retention[first["queue_url"]]
    code, text = cli("sqs", "setup")
    assert code == 0 and "kept as it is" in text


def test_a_missing_queue_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, cli: Any) -> None:
    monkeypatch.setenv("PAYRETRY_ENV", "nosuchenv")
    code, text = cli("sqs", "dlq", "list")
    assert code == 1 and "payretry sqs setup" in text


def test_queue_and_run_due_dispatch_and_stats_show_the_depth(
    sqs: Sqs, store: SqlStore, cli: Any
) -> None:
    common = ["--user-id", "usr_1", "--amount", "10.00", "--currency", "USD", "--json"]
    code, _ = cli("queue", "txn_soon", "--error-code", "network_error", *common)
    assert code == 0
    assert sqs.depth()["visible"] == 1  # due at once: sent by `queue` itself
    code, _ = cli("queue", "txn_later", "--error-code", "insufficient_funds", *common)
    assert code == 0
    assert sqs.depth()["visible"] + sqs.depth()["delayed"] == 1  # 24 h away: not yet
    queue_one(store, "insufficient_funds", utcnow() - timedelta(days=2), "txn_overdue")
    code, report = cli("run-due", "--json")
    assert code == 0, report
    assert report["dispatched"] == 1 and report["processed"] == 0
    assert [r["transaction_id"] for r in report["results"]] == ["txn_overdue"]
    assert [r["outcome"] for r in report["results"]] == ["dispatched"]
    code, stats = cli("stats", "--json")
    assert code == 0, stats
    assert stats["queue"] == {
        "queue": f"payments-retry-{sqs.env}",
        "visible": 2,
        "in_flight": 0,
        "delayed": 0,
        "dead_letter_queue": f"payments-retry-{sqs.env}-dlq",
        "dead": 0,
        "dispatched": 2,
        "unconfirmed": 0,
    }
    code, text = cli("stats")
    assert code == 0 and "2 visible, 0 in flight, 0 delayed; dead-letter queue: 0" in text


def test_poison_messages_end_in_the_dlq_and_a_repaired_one_is_redriven(
    sqs: Sqs, store: SqlStore, tmp_path: Path, cli: Any
) -> None:
    job_id = queue_one(store, "network_error", utcnow())
    queue = sqs.queue()
    Dispatcher(store, queue, clock=utcnow).dispatch()
    queue.send_body("{not json")
    # A worker pointed at the wrong database: the job is unknown there.
    ledger = str(tmp_path / "ledger.db")
    wrong = open_store(f"sqlite:///{tmp_path / 'wrong.db'}")
    lost = build_worker(wrong, queue, SimulatedProcessor(success_rate=1.0, ledger=ledger))
    with Running(lost):
        wait_for(lambda: sqs.depth(sqs.dlq_url)["visible"] == 2, 30, "two dead letters")
    wrong.close()
    assert lost.counts["unknown_job"] == 5 and lost.counts["unreadable"] == 5  # maxReceiveCount
    assert sqs.depth()["visible"] + sqs.depth()["in_flight"] == 0

    code, listed = cli("sqs", "dlq", "list", "--json")
    assert code == 0, listed
    by_problem = {m["problem"]: m for m in listed["messages"]}
    assert set(by_problem) == {None, "unreadable: not JSON"}
    dead = by_problem[None]
    assert dead["job_id"] == job_id and dead["job"]["state"] == "scheduled"
    assert dead["receive_count"] >= 5
    code, text = cli("sqs", "dlq", "list")
    assert code == 0 and "2 dead message(s)" in text and "unreadable" in text

    assert cli("sqs", "dlq", "redrive")[0] == 2  # neither ids nor --all
    assert cli("sqs", "dlq", "redrive", "no-such-message")[0] == 4
    code, moved = cli("sqs", "dlq", "redrive", dead["message_id"], "--json")
    assert code == 0, moved
    assert [m["message_id"] for m in moved["moved"]] == [dead["message_id"]]
    assert sqs.depth(sqs.dlq_url)["visible"] == 1  # the unreadable one stays for review
    assert sqs.depth()["visible"] == 1

    right = build_worker(store, queue, SimulatedProcessor(success_rate=1.0, ledger=ledger))
    with Running(right):
        wait_for(
            lambda: (j := store.get(job_id)) is not None and j.state is JobState.SUCCEEDED,
            20,
            "the redriven message to be processed",
        )
    assert ledger_rows(Path(ledger)) == [(f"payretry:{job_id}:1", 1)]
    code, rest = cli("sqs", "dlq", "redrive", "--all", "--json")
    assert code == 0 and len(rest["moved"]) == 1
    assert sqs.depth(sqs.dlq_url)["visible"] == 0
