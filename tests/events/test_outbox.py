"""The outbox: every state change writes its events in the same transaction, with stable ids;
a failed transaction leaves none; a crash before or during delivery delivers later, and the
receiver sees each id once. The in-memory twin, SQLite and PostgreSQL (`contract_store`)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

import payretry.store.sql as sql_module
from payretry.domain.changes import Cancelled, Finish, Queued, Settlement
from payretry.domain.events import Event, EventType, OutboxEntry
from payretry.domain.models import CustomerAction, JobState
from payretry.domain.outbox import Cursor, SinkError
from payretry.domain.ports import DuplicateActive
from payretry.domain.results import AttemptResult
from payretry.service.delivery import Delivery
from payretry.sinks.jsonl import JsonLinesSink
from payretry.store.outbox import write_entries
from payretry.store.sql import SqlStore, open_store
from tests.contract.conftest import ContractStore, sql_only
from tests.daemon.helpers import ledger_rows, queue_jobs, wait_for
from tests.events.conftest import POLICY, T0, Clock, all_events, queue, run_due
from tests.helpers import seen

MINUTE = timedelta(minutes=1)


def kinds(events: Sequence[Event]) -> list[tuple[str, int]]:
    """(type, attempt), a notification with its kind."""
    found = []
    for e in events:
        notice = e.data.get("notification")
        found.append((e.type.value + (f":{notice}" if notice else ""), e.attempt))
    return found


def test_queue_schedules_attempt_1_and_tells_the_customer(contract_store: ContractStore) -> None:
    job = queue(contract_store, "t1", user_id="usr_42")
    events = all_events(contract_store)
    assert kinds(events) == [("retry_scheduled", 1), ("user_notification:retry_planned", 1)]
    assert [e.id for e in events] == [
        f"{job.id}:1:retry_scheduled",
        f"{job.id}:1:user_notification:retry_planned",
    ]
    scheduled, note = (e.as_dict() for e in events)
    assert scheduled["next_retry_at"] == "2026-11-22T12:01:00Z"
    assert scheduled["policy_row"] == "processing_error" and scheduled["max_attempts"] == 3
    assert note["message"] == (
        "Your payment of 12.50 EUR did not go through. We will try again at 2026-11-22T12:01:00Z."
    )
    for event in (scheduled, note):
        assert event["transaction_id"] == "t1" and event["user_id"] == "usr_42"
        assert event["amount_minor"] == 1250 and event["currency"] == "EUR"
        assert "error_message" not in event  # free text stays out of events


@pytest.mark.parametrize(
    ("plan", "window", "expected"),
    [
        ("succeeded", None, [("retry_initiated", 1), ("retry_success", 1)]),
        (
            "processing_error,succeeded",
            None,
            [
                ("retry_initiated", 1),
                ("retry_failed", 1),
                ("retry_scheduled", 2),
                ("user_notification:retry_planned", 2),
                ("retry_initiated", 2),
                ("retry_success", 2),
            ],
        ),
        (
            "card_declined:stolen_card",
            None,
            [("retry_initiated", 1), ("retry_failed", 1), ("user_notification:failed", 1)],
        ),
        (
            "processing_error,processing_error,processing_error",
            None,
            [
                ("retry_initiated", 1),
                ("retry_failed", 1),
                ("retry_scheduled", 2),
                ("user_notification:retry_planned", 2),
                ("retry_initiated", 2),
                ("retry_failed", 2),
                ("retry_scheduled", 3),
                ("user_notification:retry_planned", 3),
                ("retry_initiated", 3),
                ("retry_failed", 3),
                ("retry_exhausted", 3),
                ("user_notification:failed", 3),
            ],
        ),
        (
            "processing_error,processing_error",
            "10m",  # attempt 3 would come 30m after attempt 2: past the window
            [
                ("retry_initiated", 1),
                ("retry_failed", 1),
                ("retry_scheduled", 2),
                ("user_notification:retry_planned", 2),
                ("retry_initiated", 2),
                ("retry_failed", 2),
                ("retry_abandoned", 2),
                ("user_notification:failed", 2),
            ],
        ),
    ],
)
def test_each_outcome_writes_its_events(
    contract_store: ContractStore, plan: str, window: str | None, expected: list[tuple[str, int]]
) -> None:
    fields: dict[str, Any] = {"metadata": {"simulate": plan}}
    if window:
        fields["window"] = window
    job = queue(contract_store, "t1", **fields)
    clock = Clock()
    for minutes in (1, 6, 36):  # processing_error waits 1m, 5m, 30m
        clock.at(minutes * MINUTE)
        run_due(contract_store, clock)
    events = all_events(contract_store)
    assert kinds(events)[2:] == expected
    assert len({e.id for e in events}) == len(events)  # stable and distinct
    for event in events:
        assert event.id.startswith(f"{job.id}:{event.attempt}:{event.type.value}")
    last = contract_store.get(job.id)
    assert last is not None
    assert events[-1].data["state"] == last.state.value
    failed = [e for e in events if e.type is EventType.FAILED]
    for event in failed:
        assert event.data["will_retry"] == (event.data["state"] == "scheduled")


def test_cancel_and_a_closed_window(contract_store: ContractStore) -> None:
    kept = queue(contract_store, "t1")
    contract_store.cancel(
        Cancelled(seen(contract_store, kept.id), T0 + MINUTE, "cancelled by an operator")
    )
    lapsed = queue(contract_store, "t2", window="2m")  # attempt 1 at +1m fits; nobody runs it
    assert [j.id for j in contract_store.abandon_expired(T0 + 3 * MINUTE)] == [lapsed.id]
    events = all_events(contract_store)
    assert kinds(events)[2:3] == [("retry_cancelled", 1)]
    assert events[2].data["reason"] == "cancelled by an operator"
    assert kinds(events)[5:] == [("retry_abandoned", 1), ("user_notification:failed", 1)]
    assert "payment window closed" in events[5].data["reason"]
    assert events[6].data["message"].startswith("Your payment of 12.50 EUR could not be completed")


def test_waiting_on_the_customer_then_paid(contract_store: ContractStore) -> None:
    job = queue(contract_store, "t1", error_code="network_error")
    [claimed] = contract_store.claim(T0, 1, timedelta(minutes=5))
    action = CustomerAction("cs_test_1", "https://checkout.example/c/cs_test_1", T0 + 60 * MINUTE)
    waiting = AttemptResult.awaiting_customer(action, "complete checkout")
    decision = POLICY.decide(claimed.job, claimed.attempt_number, waiting, T0)
    assert contract_store.finish([Finish(claimed, waiting, decision, T0)]) == [True]
    stored = contract_store.get(job.id)
    assert stored is not None and stored.state is JobState.AWAITING_PAYER
    paid = AttemptResult.success("pi_paid")
    settle = Settlement(
        stored,
        paid,
        POLICY.decide(claimed.job, claimed.attempt_number, paid, T0 + MINUTE),
        T0 + MINUTE,
    )
    assert contract_store.settle_awaiting([settle]) == [True]
    events = all_events(contract_store)
    assert kinds(events)[2:] == [
        ("retry_initiated", 1),
        ("user_notification:checkout", 1),
        ("retry_success", 1),
    ]
    note = events[3].as_dict()
    assert note["url"] == "https://checkout.example/c/cs_test_1"
    assert note["message"] == (
        "Complete checkout at https://checkout.example/c/cs_test_1 to pay 12.50 EUR before "
        "2026-11-22T13:00:00Z."
    )
    assert events[4].data["reference"] == "pi_paid"


def test_a_customer_action_note_replaces_the_plain_one(contract_store: ContractStore) -> None:
    queue(contract_store, "t1")
    [claimed] = contract_store.claim(T0 + MINUTE, 1, timedelta(minutes=5))
    failed = AttemptResult.failure(
        "authentication_failed", notify="please confirm the payment in your bank's app"
    )
    decision = POLICY.decide(claimed.job, claimed.attempt_number, failed, T0 + MINUTE)
    contract_store.finish([Finish(claimed, failed, decision, T0 + MINUTE)])
    events = all_events(contract_store)
    assert kinds(events)[3:] == [
        ("retry_failed", 1),
        ("retry_scheduled", 2),
        ("user_notification:action_required", 1),
    ]
    assert events[-1].data["message"] == (
        "Your payment of 12.50 EUR needs your attention: please confirm the payment in your "
        "bank's app. We will try again at 2026-11-22T12:31:00Z."
    )


def test_a_rescued_attempt_is_announced_again_under_the_same_id(
    contract_store: ContractStore,
) -> None:
    queue(contract_store, "t1", error_code="network_error")
    contract_store.claim(T0, 1, timedelta(minutes=1))
    assert contract_store.rescue(T0 + 2 * MINUTE).rescued == 1
    contract_store.claim(T0 + 2 * MINUTE, 1, timedelta(minutes=1))
    initiated = [e.id for e in all_events(contract_store) if e.type is EventType.INITIATED]
    assert len(initiated) == 2 and len(set(initiated)) == 1


class _Unwritable(Cancelled):
    """A cancel whose outbox entry cannot be written (the process dies while writing it)."""

    @property
    def entry(self) -> OutboxEntry:
        raise RuntimeError("the process dies before COMMIT")


def test_a_failed_transaction_leaves_no_event(contract_store: ContractStore) -> None:
    job = queue(contract_store, "t1")
    before = all_events(contract_store)
    with pytest.raises(RuntimeError):
        contract_store.cancel(_Unwritable(seen(contract_store, job.id), T0, "by an operator"))
    still = contract_store.get(job.id)
    assert still is not None and still.state is JobState.SCHEDULED  # no change...
    assert all_events(contract_store) == before  # ...and no event
    # A bulk queue that fails on its last row writes no job and no event.
    with pytest.raises(DuplicateActive):
        contract_store.insert_many(
            [Queued(j) for j in [_renamed(job, "t3", "a" * 32), _renamed(job, "t1", "b" * 32)]]
        )
    assert all_events(contract_store) == before
    assert contract_store.find("t3") is None
    # A finish whose lease was lost writes nothing.
    [claimed] = contract_store.claim(T0 + MINUTE, 1, timedelta(minutes=1))
    contract_store.rescue(T0 + 3 * MINUTE)
    contract_store.claim(T0 + 3 * MINUTE, 1, timedelta(minutes=1))
    before = all_events(contract_store)
    late = AttemptResult.success("pi_late")
    assert contract_store.finish(
        [Finish(claimed, late, POLICY.decide(claimed.job, claimed.attempt_number, late, T0), T0)]
    ) == [False]
    assert all_events(contract_store) == before


def test_entries_written_then_rolled_back_leave_no_event(
    contract_store: ContractStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = sql_only(contract_store, "patches the SQL store's outbox write")
    job = queue(store, "t1")
    before = all_events(store)

    def write_then_fail(conn: Any, entries: Sequence[OutboxEntry]) -> None:
        write_entries(conn, entries)
        raise RuntimeError("the process dies before COMMIT")

    monkeypatch.setattr(sql_module, "write_entries", write_then_fail)
    with pytest.raises(RuntimeError):
        store.cancel(Cancelled(seen(store, job.id), T0, "cancelled by an operator"))
    monkeypatch.undo()
    still = store.get(job.id)
    assert still is not None and still.state is JobState.SCHEDULED
    assert all_events(store) == before


def _renamed(job: Any, txn: str, job_id: str) -> Any:
    from dataclasses import replace

    return replace(job, id=job_id, transaction_id=txn)


def delivers_at_once(store: ContractStore) -> ContractStore:
    """The store, for a test that delivers and expects every committed entry at once: not on
    PostgreSQL, where delivery waits until no transaction anywhere on the server could still
    precede an entry, and other sessions on a shared server hold that back for a while
    (test_postgresql_delivers_in_commit_safe_order waits for it)."""
    if isinstance(store, SqlStore) and store.dialect == "postgresql":
        pytest.skip("delivery on PostgreSQL waits for the server's other transactions")
    return store


class Recording:
    """A sink that keeps what it is sent; `die_after_send` stops the process (as a SIGKILL
    would) after the send and before the cursor moves."""

    name = "recording"

    def __init__(self, die_after_send: bool = False) -> None:
        self.batches: list[list[str]] = []
        self.die_after_send = die_after_send

    def send(self, events: Sequence[Event]) -> None:
        self.batches.append([e.id for e in events])
        if self.die_after_send:
            raise SystemExit("killed")

    def close(self) -> None:
        pass

    @property
    def ids(self) -> Counter[str]:
        return Counter(i for batch in self.batches for i in batch)


def test_a_crash_during_delivery_sends_again_and_the_receiver_keeps_each_id_once(
    contract_store: ContractStore,
) -> None:
    store = delivers_at_once(contract_store)
    for n in range(3):
        queue(store, f"t{n}")
    clock = Clock()
    sink = Recording(die_after_send=True)
    with pytest.raises(SystemExit):
        Delivery(store, [sink], clock=clock, batch_size=2).deliver()
    assert len(sink.batches) == 1  # sent, never recorded as sent
    # Later (the dead process's lease has lapsed), another process delivers everything.
    sink.die_after_send = False
    clock.at(10 * MINUTE)
    [result] = Delivery(store, [sink], clock=clock, batch_size=2).deliver()
    assert result.error is None and result.entries == 3
    everything = {e.id for e in all_events(store)}
    assert set(sink.ids) == everything  # nothing lost
    assert max(sink.ids.values()) == 2  # the first batch twice: at least once...
    assert len(set(sink.ids)) == len(everything)  # ...and once per id after dropping repeats
    [again] = Delivery(store, [sink], clock=clock).deliver()
    assert again.entries == 0


def test_a_failing_sink_keeps_its_events_and_backs_off(contract_store: ContractStore) -> None:
    store = delivers_at_once(contract_store)
    queue(store, "t1")

    class Down:
        name = "down"

        def send(self, events: Sequence[Event]) -> None:
            raise SinkError("receiver unreachable")

        def close(self) -> None:
            pass

    clock = Clock()
    delivery = Delivery(store, [Down(), Recording()], clock=clock)
    down, fine = delivery.deliver()
    assert down.error == "receiver unreachable" and down.retry_at == T0 + timedelta(seconds=1)
    assert fine.entries == 1  # the other sink is not held up
    assert delivery.deliver()[0].skipped == "backing off after a failure"
    clock.at(timedelta(seconds=1))
    again = delivery.deliver()[0]
    assert again.retry_at == T0 + timedelta(seconds=3)  # 1s, then 2s, ...
    state = store.sink_states()["down"]
    assert state.failures == 2 and state.cursor == Cursor() and state.last_error
    assert store.count_after(state.cursor) == 1
    assert delivery.backoff(40) == timedelta(minutes=5)


def test_purge_keeps_what_a_configured_sink_has_not_taken(contract_store: ContractStore) -> None:
    store = delivers_at_once(contract_store)
    queue(store, "t1")
    queue(store, "t2")
    sink = Recording()
    Delivery(store, [sink], clock=Clock(), batch_size=1).deliver(limit=1)
    later = T0 + timedelta(days=60)
    assert store.purge_events(later, ["recording", "never_ran"]) == 0
    assert store.purge_events(later, ["recording"]) == 1
    assert [e.transaction_id for e in all_events(store)] == ["t2", "t2"]
    assert store.purge_events(T0, []) == 0  # nothing that old
    assert store.purge_events(later, []) == 1


@pytest.mark.postgres
def test_postgresql_delivers_in_commit_safe_order(postgres_store: SqlStore) -> None:
    """A transaction that took a lower seq but commits later is not skipped: delivery waits
    for it (a plain `seq > cursor` would have passed it by)."""
    store = postgres_store
    first = store.engine.connect()
    second = store.engine.connect()
    try:
        tx_first = first.begin()
        first.execute(text("SELECT pg_current_xact_id()"))  # the older transaction id
        tx_second = second.begin()
        write_entries(second, [_entry("late", 1)])  # seq 1, in the younger transaction
        write_entries(first, [_entry("early", 2)])  # seq 2, in the older one
        tx_second.commit()
        # The older transaction is still open: nothing after it may be delivered yet.
        assert store.entries_after(Cursor(), 10) == []
        assert len(store.entries_after(Cursor(), 10, settled=False)) == 1  # though it is there
        tx_first.commit()
        delivered: list[OutboxEntry] = []

        def settled() -> bool:
            # Other sessions' transactions on a shared server hold the horizon back a while.
            delivered[:] = store.entries_after(Cursor(), 10)
            return len(delivered) == 2

        wait_for(settled, 30, "both entries deliverable")
        assert [e.job_id for e in delivered] == ["early", "late"]  # commit-safe order
        assert [e.seq for e in delivered] == [2, 1]
        cursor = Cursor.of(delivered[0])
        assert [e.job_id for e in store.entries_after(cursor, 10)] == ["late"]
    finally:
        first.close()
        second.close()


def _entry(job_id: str, attempt: int) -> OutboxEntry:
    return OutboxEntry(job_id, attempt, EventType.INITIATED, T0, {"transaction_id": job_id})


@pytest.mark.slow
def test_a_run_killed_mid_batch_loses_no_event(tmp_path: Path) -> None:
    """A real run-due, SIGKILLed mid-run: every change it committed is in the outbox and is
    delivered by a later `events deliver`, each event id once."""
    db = f"sqlite:///{tmp_path / 'k.db'}"
    ledger = tmp_path / "ledger.db"
    out = tmp_path / "events.jsonl"
    store = open_store(db)
    try:
        queue_jobs(store, 40, datetime.now(UTC))  # due now, for a real run-due
    finally:
        store.close()
    from tests.daemon.helpers import cli_env

    env = cli_env(
        db,
        ledger,
        PAYRETRY_SIMULATED_LATENCY="0.02s",
        PAYRETRY_RUNNER_BATCH_SIZE="4",  # outcomes are recorded per claimed batch
        PAYRETRY_EVENTS_FILE=str(out),
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "payretry", "run-due"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: len(ledger_rows(ledger)) >= 8, 30, "eight attempts")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    done = subprocess.run(
        [sys.executable, "-m", "payretry", "events", "deliver", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["sinks"][0]["entries"] > 10
    written = [json.loads(line) for line in out.read_text().splitlines()]
    ids = Counter(e["id"] for e in written)
    assert max(ids.values()) == 1
    store = open_store(db)
    try:
        assert set(ids) == {e.id for e in all_events(store)}
        paid = {e["job_id"] for e in written if e["type"] == "retry_success"}
        succeeded = {j.id for j in store.list_jobs(state=JobState.SUCCEEDED, limit=1000)}
        assert paid == succeeded and len(paid) >= 4
        again = Delivery(store, [JsonLinesSink(str(out))], clock=Clock()).deliver()
        assert again[0].entries == 0  # nothing new: each id was written once
    finally:
        store.close()
