"""The operator's view: `explain` and `stats` (human and --json) for jobs in every state with
their events; `events list` and `events deliver`; secrets masked and kept out of output;
`serve` delivering continuously with /metrics; `run-due --metrics-textfile`."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import urllib.request
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from payretry.clock import utcnow
from payretry.domain.changes import Finish
from payretry.domain.models import CustomerAction
from payretry.domain.results import AttemptResult
from payretry.store.sql import open_store
from tests.cli.conftest import Clock, Invoke, assert_error, doc, ok, queued
from tests.daemon.helpers import cli_env, payretry, queue_jobs, wait_for
from tests.events.conftest import POLICY, Receiver

STATES = {
    "t_scheduled": "scheduled",
    "t_running": "running",
    "t_awaiting": "awaiting_payer",
    "t_paid": "succeeded",
    "t_failed": "failed",
    "t_exhausted": "exhausted",
    "t_abandoned": "abandoned",
    "t_cancelled": "cancelled",
}
SECRET = "whsec_do_not_print_0123456789"
WRITE_KEY = "wk_do_not_print_0123456789"


@pytest.fixture
def every_state(invoke: Invoke, frozen_clock: Clock, db_path: Path) -> None:
    """One job in each state, made through the CLI (and the store, for the two in between)."""
    queued(invoke, "t_scheduled", error_code="insufficient_funds")  # waits 24h
    queued(invoke, "t_running", error_code="insufficient_funds")
    queued(invoke, "t_awaiting", error_code="insufficient_funds")
    queued(invoke, "t_paid", "--metadata", "simulate=succeeded")
    queued(invoke, "t_failed", "--metadata", "simulate=card_declined:stolen_card")
    three = "simulate=processing_error,processing_error,processing_error"
    queued(invoke, "t_exhausted", "--metadata", three)
    queued(invoke, "t_abandoned", "--metadata", "simulate=processing_error,processing_error",
           window="10m")  # fmt: skip
    queued(invoke, "t_cancelled", error_code="insufficient_funds")
    ok(invoke("cancel", "t_cancelled"))
    for minutes in (1, 5, 30):  # processing_error waits 1m, 5m, 30m
        frozen_clock.tick(minutes * 60.0)
        ok(invoke("run-due"))
    store = open_store(f"sqlite:///{db_path}")
    try:
        for txn in ("t_running", "t_awaiting"):
            job = store.find(txn)
            assert job is not None
            [claimed] = store.claim(utcnow(), 1, timedelta(minutes=5), job_id=job.id)
        action = CustomerAction("cs_test_9", "https://checkout.example/c/cs_test_9", None)
        waiting = AttemptResult.awaiting_customer(action, "complete checkout")
        decision = POLICY.decide(claimed.job, claimed.attempt_number, waiting, utcnow())
        assert store.finish([Finish(claimed, waiting, decision, utcnow())]) == [True]
    finally:
        store.close()


def test_explain_json_for_every_state(invoke: Invoke, every_state: None) -> None:
    expected_last = {
        "t_scheduled": "user_notification",
        "t_running": "retry_initiated",
        "t_awaiting": "user_notification",
        "t_paid": "retry_success",
        "t_failed": "user_notification",
        "t_exhausted": "user_notification",
        "t_abandoned": "user_notification",
        "t_cancelled": "retry_cancelled",
    }
    for txn, state in STATES.items():
        document = doc(ok(invoke("explain", txn, "--json")))
        assert document["state"] == state
        assert document["story"][-1]["state"] == state
        events = document["events"]
        assert events[0]["type"] == "retry_scheduled" and events[0]["attempt"] == 1
        assert events[-1]["type"] == expected_last[txn], txn
        assert all(e["id"].startswith(document["job_id"] + ":") for e in events)
        assert all(e["transaction_id"] == txn for e in events)
        assert all(e["pending_for"] == [] and e["delivered_to"] == [] for e in events)
    awaiting = doc(ok(invoke("explain", "t_awaiting", "--json")))["events"][-1]
    assert awaiting["notification"] == "checkout"
    assert awaiting["url"] == "https://checkout.example/c/cs_test_9"
    exhausted = [e["type"] for e in doc(ok(invoke("explain", "t_exhausted", "--json")))["events"]]
    assert exhausted[-3:] == ["retry_failed", "retry_exhausted", "user_notification"]


def test_explain_human_for_every_state(invoke: Invoke, every_state: None) -> None:
    for txn, state in STATES.items():
        out = ok(invoke("explain", txn)).stdout
        assert f"It is {state}" in out, (txn, out)
        assert "Events (" in out
        assert "attempt 1 retry_scheduled for 2026-11-2" in out
    out = ok(invoke("explain", "t_paid")).stdout
    assert "attempt 1 retry_success" in out
    out = ok(invoke("explain", "t_failed")).stdout
    assert "retry_failed (stolen_card; no retry)" in out
    assert 'user_notification failed: "Your payment of 99.99 USD could not be completed' in out
    out = ok(invoke("explain", "t_awaiting")).stdout
    assert 'user_notification checkout: "Complete checkout at https://checkout.example' in out


def test_stats_for_every_state(invoke: Invoke, every_state: None, tmp_path: Path) -> None:
    document = doc(ok(invoke("stats", "--json")))
    assert document["by_state"] == dict.fromkeys(STATES.values(), 1)
    assert document["total"] == 8
    assert document["events"]["changes"] > 8 and document["events"]["sinks"] == []
    # attempts: paid 1/1; failed 0/1; exhausted 0/3; abandoned 0/2 (running/awaiting unfinished)
    assert document["success_rate_by_attempt"]["1"] == 0.25
    assert document["success_rate"] == round(1 / 7, 4)
    out = ok(invoke("stats")).stdout
    for state in STATES.values():
        assert state in out
    assert "Success rate: 14.3%" in out
    assert "change(s) in the outbox; no sink configured" in out
    events = tmp_path / "e.jsonl"
    env = {"PAYRETRY_EVENTS_FILE": str(events)}
    with_sink = doc(ok(invoke("stats", "--json", env=env)))["events"]["sinks"]
    assert [(s["sink"], s["pending"] > 0) for s in with_sink] == [("file", True)]
    ok(invoke("events", "deliver", env=env))
    assert "file 0 change(s) pending" in ok(invoke("stats", env=env)).stdout


def test_events_list_and_deliver(invoke: Invoke, frozen_clock: Clock, tmp_path: Path) -> None:
    out_file = tmp_path / "events.jsonl"
    env = {"PAYRETRY_EVENTS_FILE": str(out_file)}
    job = queued(invoke, "t1", "--metadata", "simulate=succeeded")
    frozen_clock.tick(60.0)
    ok(invoke("run-due"))
    listed = doc(ok(invoke("events", "list", "--json", env=env)))
    assert [e["type"] for e in listed["events"]] == [  # newest change first
        "retry_success",
        "retry_initiated",
        "retry_scheduled",
        "user_notification",
    ]
    assert {s["sink"]: s["pending"] for s in listed["sinks"]} == {"file": 3}
    pending = doc(ok(invoke("events", "list", "--pending", "--json", env=env)))
    assert [e["type"] for e in pending["events"]][:2] == ["retry_scheduled", "user_notification"]
    assert all(e["pending_for"] == ["file"] for e in pending["events"])
    human = ok(invoke("events", "list", "--pending", env=env)).stdout
    assert "4 event(s) pending" in human and "retry_success" in human
    delivered = doc(ok(invoke("events", "deliver", "--json", env=env)))
    assert delivered == {
        "sinks": [
            {
                "sink": "file",
                "entries": 3,
                "events": 4,
                "error": None,
                "skipped": None,
                "retry_at": None,
            }
        ],
        "failed": 0,
    }
    lines = [json.loads(line) for line in out_file.read_text().splitlines()]
    assert [e["id"].split(":", 1)[0] for e in lines] == [job["job_id"]] * 4
    assert "No events pending." in ok(invoke("events", "list", "--pending", env=env)).stdout
    assert "file: 0 event(s) delivered" in ok(invoke("events", "deliver", env=env)).stdout
    # To stdout: the events are the output; the summary goes to stderr.
    queued(invoke, "t2")
    result = ok(invoke("events", "deliver", env={"PAYRETRY_EVENTS_FILE": "-"}))
    assert [json.loads(line)["type"] for line in result.stdout.splitlines()][-2:] == [
        "retry_scheduled",
        "user_notification",
    ]
    assert "file:" in result.stderr
    assert "No sink is configured" in ok(invoke("events", "deliver")).stdout
    assert_error(invoke("events", "deliver", "--sink", "webhook", env=env), 2, "not configured")


def test_a_failed_delivery_exits_1_and_keeps_secrets_out(
    invoke: Invoke, frozen_clock: Clock
) -> None:
    down = Receiver(secret=SECRET).start()
    down.stop()  # a closed port
    env = {
        "PAYRETRY_WEBHOOK_URL": f"http://hook:pw123@127.0.0.1:{down.port}/x?token=t0k3n",
        "PAYRETRY_WEBHOOK_SECRET": SECRET,
        "PAYRETRY_WEBHOOK_RETRIES": "0",
        "PAYRETRY_SEGMENT_WRITE_KEY": WRITE_KEY,
        "PAYRETRY_SEGMENT_HOST": f"http://127.0.0.1:{down.port}",
        "PAYRETRY_LOG_FORMAT": "json",
        "PAYRETRY_LOG_LEVEL": "debug",
    }
    queued(invoke, "t1", "--metadata", "simulate=succeeded")
    frozen_clock.tick(60.0)
    ok(invoke("run-due"))  # analytics events for Segment too
    result = invoke("events", "deliver", env=env)
    assert_error(result, 1, "delivery failed for webhook", "segment")
    everything = result.stdout + result.stderr
    for secret in (SECRET, WRITE_KEY, "pw123", "t0k3n"):
        assert secret not in everything
    listed = doc(ok(invoke("events", "list", "--pending", "--json", env=env)))
    assert {s["sink"]: s["failures"] for s in listed["sinks"]} == {"webhook": 1, "segment": 1}
    assert all(secret not in json.dumps(listed) for secret in (SECRET, WRITE_KEY, "pw123"))
    settings = {
        s["key"]: s["value"] for s in doc(ok(invoke("config", "--json", env=env)))["settings"]
    }
    assert SECRET not in str(settings["webhook.secret"]) and "***" in settings["webhook.secret"]
    assert WRITE_KEY not in str(settings["segment.write_key"])
    assert "pw123" not in settings["webhook.url"]
    human = ok(invoke("config", env=env)).stdout
    assert SECRET not in human and WRITE_KEY not in human


def test_run_due_writes_the_textfile(invoke: Invoke, frozen_clock: Clock, tmp_path: Path) -> None:
    queued(invoke, "t1", "--metadata", "simulate=succeeded")
    frozen_clock.tick(60.0)
    path = tmp_path / "prom" / "payretry.prom"
    path.parent.mkdir()
    document = doc(ok(invoke("run-due", "--json", "--metrics-textfile", str(path))))
    assert document["processed"] == 1
    families = {f.name: f for f in text_string_to_metric_families(path.read_text())}
    assert families["payments_retry_success_rate"].samples[0].value == 1.0
    jobs = {s.labels["outcome"]: s.value for s in families["payretry_run_due_jobs"].samples}
    assert jobs["succeeded"] == 1
    assert_error(invoke("run-due", "--metrics-textfile", str(tmp_path / "no" / "x.prom")), 1,
                 "cannot write metrics")  # fmt: skip


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.mark.slow
def test_serve_delivers_continuously_and_exposes_metrics(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 's.db'}"
    events = tmp_path / "events.jsonl"
    store = open_store(db)
    try:
        queue_jobs(store, 20, utcnow())
    finally:
        store.close()
    port = free_port()
    env = cli_env(
        db,
        tmp_path / "ledger.db",
        PAYRETRY_EVENTS_FILE=str(events),
        PAYRETRY_EVENTS_INTERVAL="0.2s",
    )
    proc = payretry("serve", "--interval", "0.2s", "--metrics-port", str(port), env=env)
    try:

        def paid() -> int:
            if not events.exists():
                return 0
            lines = [json.loads(line) for line in events.read_text().splitlines()]
            return sum(1 for e in lines if e["type"] == "retry_success")

        wait_for(lambda: paid() == 20, 30, "20 payments delivered to the file")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
        found: dict[str, Any] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                found[sample.name + json.dumps(sample.labels, sort_keys=True)] = sample.value
        assert found['payretry_jobs{"state": "succeeded"}'] == 20
        assert found['payments_retry_attempt_count{"retry_attempt": "1"}'] == 20
        assert found["retry_queue_size{}"] == 0
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert f"metrics on http://127.0.0.1:{port}/metrics" in err
    ids = [json.loads(line)["id"] for line in events.read_text().splitlines()]
    assert len(ids) == len(set(ids)) == 20 * 4


def test_help_stays_light() -> None:
    code = (
        "import sys\n"
        "from payretry.cli import main\n"
        "try:\n"
        "    main(['events', '--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = ('segment', 'datadog', 'prometheus_client', 'requests', 'sqlalchemy')\n"
        "print('LOADED=' + ','.join(m for m in heavy if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "LOADED="
