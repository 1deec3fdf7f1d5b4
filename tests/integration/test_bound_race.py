"""Two processes queueing at the full mark at once, on SQLite and on PostgreSQL: the bound
(`[queue] max_active`) is never exceeded, and every eviction is one a single queue would make.

Nothing here finishes a job, so the active count can only grow by a queue and fall by an
eviction; a bound exceeded once (two queues that both counted one slot free) would stay
exceeded, since a queue past the bound evicts at most one job per new job.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from payretry.domain.bound import QueueBound
from payretry.domain.changes import Queued
from payretry.domain.models import ACTIVE_STATES, Job, JobState
from payretry.domain.money import Money
from payretry.domain.policy import RetryPolicy
from payretry.errors import Refused
from payretry.service.intake import new_job
from payretry.service.operations import Operations, new_job_id
from payretry.store.sql import open_store
from tests.daemon.helpers import cli_env, payretry

pytestmark = pytest.mark.slow

MAX_ACTIVE = 40
PREFILLED = MAX_ACTIVE - 1  # one slot free: the full mark
PER_PROCESS = 30
ROUNDS = 120  # lockstep rounds of the threads: without the lock most runs exceed the bound

# Each process says it is ready (its ready file), waits for the go file, then queues its jobs
# one by one as fast as it can.
_QUEUER = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    from payretry.clock import utcnow
    from payretry.config import load_settings
    from payretry.errors import Refused
    from payretry.service.intake import new_job
    from payretry.service.operations import Operations
    from payretry.store.sql import open_store

    url, name, go, count = sys.argv[1], sys.argv[2], Path(sys.argv[3]), int(sys.argv[4])
    ready = go.with_name(f"ready-{name}")
    settings = load_settings(env={"PAYRETRY_QUEUE_MAX_ACTIVE": sys.argv[5]})
    store = open_store(url)
    ops = Operations(store, settings.policy(), bound=settings.queue.bound())
    requests = [
        new_job(
            {
                "transaction_id": f"{name}-{i}",
                "user_id": f"user-{name}",
                "amount": "10.00",
                "currency": "USD",
                "error_code": "processing_error",
                "priority": str(100 + i),
            },
            now=utcnow(),
        )
        for i in range(count)
    ]
    ready.touch()
    while not go.exists():
        time.sleep(0.005)
    created = refused = 0
    for request in requests:
        try:
            ops.queue(request, utcnow())
            created += 1
        except Refused:
            refused += 1
    store.close()
    print(json.dumps({"created": created, "refused": refused}))
    """
)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgresql":
        found: str = request.getfixturevalue("pg_url")
        return found
    return f"sqlite:///{tmp_path / 'bound.db'}"


def _low_jobs(now: datetime) -> list[Job]:
    return [
        Job(
            id=new_job_id(),
            transaction_id=f"low-{n}",
            user_id="user-low",
            money=Money(1000, "USD"),
            error_code="processing_error",
            decline_code=None,
            error_message=None,
            state=JobState.SCHEDULED,
            attempt_count=0,
            max_attempts=3,
            next_retry_at=now + timedelta(hours=1 + n),
            created_at=now,
            updated_at=now,
            expires_at=None,
            priority=n % 3,
        )
        for n in range(PREFILLED)
    ]


def _by_state(url: str) -> dict[str, int]:
    store = open_store(url)
    try:
        return dict(store.stats(datetime.now(UTC)).by_state)
    finally:
        store.close()


def _active(by_state: dict[str, int]) -> int:
    return sum(n for state, n in by_state.items() if JobState(state) in ACTIVE_STATES)


def _prefill(url: str) -> None:
    store = open_store(url)
    try:
        store.insert_many([Queued(job) for job in _low_jobs(datetime.now(UTC))])
    finally:
        store.close()


def test_two_processes_queueing_one_by_one_at_the_full_mark(url: str, tmp_path: Path) -> None:
    _prefill(url)
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _QUEUER, url, name, str(go), str(PER_PROCESS), str(MAX_ACTIVE)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("a", "b")
    ]
    # Both have imported, opened the store and built their requests: then they start together.
    ready = [tmp_path / f"ready-{name}" for name in ("a", "b")]
    deadline = time.monotonic() + 60  # a guard against a hang, not a goal
    while not all(path.exists() for path in ready):
        assert all(proc.poll() is None for proc in procs), [p.communicate() for p in procs]
        assert time.monotonic() < deadline, "the queueing processes never got ready"
        time.sleep(0.01)
    go.touch()
    reports = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)  # a guard against a hang, not a goal
        assert proc.returncode == 0, err
        reports.append(json.loads(out))
    created = sum(r["created"] for r in reports)
    refused = sum(r["refused"] for r in reports)
    assert created + refused == 2 * PER_PROCESS
    by_state = _by_state(url)
    assert _active(by_state) == MAX_ACTIVE, by_state
    # Each job created past the full mark evicted exactly one.
    assert by_state.get("evicted", 0) == created - 1, (by_state, reports)
    assert by_state.get("evicted", 0) + _active(by_state) == PREFILLED + created


def test_two_threads_in_lockstep_at_the_full_mark(url: str) -> None:
    """Two connections, each queue started at the same instant (a barrier per round), so
    their counts overlap: the lock (or BEGIN IMMEDIATE) alone keeps them apart."""
    _prefill(url)
    store = open_store(url)
    ops = Operations(store, RetryPolicy.standard(), bound=QueueBound(MAX_ACTIVE))
    barrier = threading.Barrier(2)
    outcomes: dict[str, list[bool]] = {"a": [], "b": []}
    now = datetime.now(UTC)

    def queue(name: str) -> None:
        for i in range(ROUNDS):
            request = new_job(
                {
                    "transaction_id": f"{name}-{i}",
                    "user_id": f"user-{name}",
                    "amount": "10.00",
                    "currency": "USD",
                    "error_code": "processing_error",
                    "priority": str(100 + i),
                },
                now=now,
            )
            barrier.wait(timeout=30)
            try:
                ops.queue(request, now)
                outcomes[name].append(True)
            except Refused:
                outcomes[name].append(False)

    try:
        threads = [threading.Thread(target=queue, args=(name,)) for name in outcomes]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
    finally:
        store.close()
    created = sum(sum(done) for done in outcomes.values())
    assert sum(len(done) for done in outcomes.values()) == 2 * ROUNDS
    by_state = _by_state(url)
    assert _active(by_state) == MAX_ACTIVE, by_state
    assert by_state.get("evicted", 0) == created - 1, by_state


def test_two_bulk_files_at_the_full_mark_one_wins_one_is_refused(url: str, tmp_path: Path) -> None:
    """Both files hold jobs of priority 100: the first to commit evicts the lows it needs; the
    second would need to evict jobs of its own priority, so it is refused whole (exit 3)."""
    _prefill(url)
    files = []
    for name in ("a", "b"):
        path = tmp_path / f"{name}.jsonl"
        rows = [
            {
                "transaction_id": f"{name}-{i}",
                "user_id": f"user-{name}",
                "amount": "10.00",
                "currency": "USD",
                "error_code": "processing_error",
                "priority": 100,
            }
            for i in range(PER_PROCESS)
        ]
        path.write_text("".join(json.dumps(row) + "\n" for row in rows))
        files.append(path)
    env = cli_env(url, tmp_path / "ledger.db", PAYRETRY_QUEUE_MAX_ACTIVE=str(MAX_ACTIVE))
    procs = [payretry("queue", "--from-file", str(path), "--json", env=env) for path in files]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        results.append((proc.returncode, out, err))
    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 3], results
    refused = next(err for code, _, err in results if code == 3)
    assert "queue is full" in refused and "nothing written" in refused
    by_state = _by_state(url)
    assert _active(by_state) == MAX_ACTIVE
    assert by_state.get("evicted", 0) == PREFILLED + PER_PROCESS - MAX_ACTIVE
