"""The daemon through its trigger and tick function (no sleeping), health and purge."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from payretry.config import load_settings
from payretry.daemon import Daemon, build_scheduler
from payretry.domain.models import JobState
from payretry.processors.simulated import SimulatedProcessor
from payretry.service.health import check_health
from payretry.service.runner import Runner
from payretry.store.sql import SqlStore
from tests.daemon.helpers import queue_jobs

T0 = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def make_daemon(store: SqlStore, clock: Clock, interval: float = 30) -> Daemon:
    runner = Runner(
        store,
        load_settings(env={}).policy(),
        SimulatedProcessor(success_rate=1.0),
        clock=clock,
    )
    return Daemon(
        store,
        runner,
        stop=runner.stop,
        interval=timedelta(seconds=interval),
        retention=timedelta(days=30),
        clock=clock,
        name="host:1",
    )


def test_scheduler_is_an_in_memory_ticker_one_instance_coalesced(store: SqlStore) -> None:
    daemon = make_daemon(store, Clock(T0), interval=30)
    scheduler = build_scheduler(daemon)
    assert isinstance(scheduler, BackgroundScheduler)
    jobs = {job.id: job for job in scheduler.get_jobs()}
    assert set(jobs) == {"tick", "beat"}
    tick = jobs["tick"]
    assert tick.func == daemon.tick
    assert tick.max_instances == 1
    assert tick.coalesce is True
    assert isinstance(tick.trigger, IntervalTrigger)
    assert tick.trigger.interval == timedelta(seconds=30)
    fire = tick.trigger.get_next_fire_time(T0, T0 + timedelta(seconds=1))
    assert fire == T0 + timedelta(seconds=30)
    assert tick.misfire_grace_time is None  # a late tick still runs (once: coalesced)
    beat = jobs["beat"]
    assert beat.max_instances == 1 and beat.trigger.interval == timedelta(seconds=30)


def test_tick_attempts_due_jobs_and_beat_reports_health(store: SqlStore) -> None:
    clock = Clock(T0)
    queue_jobs(store, 5, T0)
    daemon = make_daemon(store, clock)
    daemon.beat()
    report = daemon.tick()
    assert report is not None
    assert report.processed == 5
    assert report.counts["succeeded"] == 5
    assert store.stats(T0).by_state == {"succeeded": 5}
    health = check_health(store, T0 + timedelta(seconds=60), timedelta(minutes=15))
    assert health.ok and health.mode == "serve"
    # Three intervals without a beat: unhealthy, naming the daemon.
    health = check_health(store, T0 + timedelta(seconds=91), timedelta(minutes=15))
    assert not health.ok and "host:1" in health.reason
    # A stopped daemon does not tick.
    daemon.stop.set()
    assert daemon.tick() is None


def test_health_in_cron_mode_follows_the_oldest_due_job(store: SqlStore) -> None:
    assert check_health(store, T0, timedelta(minutes=15)).ok
    queue_jobs(store, 2, T0)
    fresh = check_health(store, T0 + timedelta(minutes=14), timedelta(minutes=15))
    assert fresh.ok and fresh.mode == "cron"
    stale = check_health(store, T0 + timedelta(minutes=16), timedelta(minutes=15))
    assert not stale.ok and "16m" in stale.reason
    assert stale.oldest_due_at == T0


def test_forgotten_daemon_leaves_cron_mode(store: SqlStore) -> None:
    store.beat("old:1", "serve", timedelta(seconds=30), T0 - timedelta(days=2))
    assert check_health(store, T0, timedelta(minutes=15)).mode == "cron"
    store.forget_worker("old:1")
    assert store.workers() == []


def test_tick_purges_old_finished_jobs_once_a_day(store: SqlStore) -> None:
    clock = Clock(T0)
    queue_jobs(store, 3, T0)
    daemon = make_daemon(store, clock)
    daemon.tick()  # all three succeed at T0; the first purge finds nothing old
    assert daemon.last_purge == T0
    queue_jobs(
        store, 1, T0 + timedelta(days=31), metadata={"simulate": "processing_error"}, prefix="new"
    )
    clock.now = T0 + timedelta(days=31)
    daemon.tick()  # a day has passed: the three from T0 go, the new scheduled one stays
    assert store.stats(clock.now).total == 1
    assert store.purge(clock.now, dry_run=True) == 0
    assert daemon.last_purge == clock.now


def test_purge_never_touches_active_jobs(store: SqlStore) -> None:
    queue_jobs(store, 3, T0)
    assert store.purge(T0 + timedelta(days=365)) == 0
    assert store.stats(T0).by_state == {JobState.SCHEDULED.value: 3}


def test_the_daily_purge_prunes_the_card_ledger_on_its_own_retention(store: SqlStore) -> None:
    from payretry.domain.card_ledger import CardKey, KeyKind
    from payretry.service.intake import new_job
    from payretry.service.operations import Operations

    clock = Clock(T0)
    fields = {"user_id": "u", "amount": "1.00", "currency": "USD", "error_code": "network_error"}
    operations = Operations(store, load_settings(env={}).policy(), ledger=store)
    for n in range(2):
        row = {**fields, "transaction_id": f"t{n}", "customer": "cus_daily"}
        operations.queue(new_job(row, now=T0), T0)
    policy = load_settings(env={}).policy()
    runner = Runner(store, policy, SimulatedProcessor(success_rate=1.0), clock=clock)
    daemon = Daemon(
        store,
        runner,
        stop=runner.stop,
        interval=timedelta(seconds=30),
        retention=timedelta(days=1),
        clock=clock,
        ledger=store,
        ledger_retention=timedelta(days=31),
    )
    card = CardKey(KeyKind.CUSTOMER, "cus_daily")
    clock.now = T0 + timedelta(days=2)
    daemon.tick()  # the jobs' retention is a day: the ledger's is not
    assert len(store.card_history(card, T0 - timedelta(days=1))) >= 2
    clock.now = T0 + timedelta(days=40)
    daemon.tick()
    assert store.card_history(card, T0 - timedelta(days=1)) == []
