"""The AnalyticsStore contract on every backend: rollups added by each change that ends an
attempt or a job (in its transaction, merged per batch), kept after purge; the job search;
throughput; the two distribution metrics."""

from __future__ import annotations

from datetime import date, timedelta

from payretry.domain.analytics import JobFilter
from payretry.domain.changes import Cancelled, Finish, Queued
from payretry.domain.models import JobState
from payretry.domain.policy import Decision, Outcome
from payretry.domain.results import AttemptResult
from payretry.domain.rollups import Metric, Rollup
from tests.contract.conftest import ContractStore
from tests.contract.test_store_contract import LEASE, NOW, ROW, failed_retry, make_job

DAY = NOW.date()


def _by(store: ContractStore, metric: Metric) -> dict[tuple[str, str], tuple[int, int, float]]:
    return {
        (r.key, r.currency): (r.count, r.amount_minor, round(r.seconds, 3))
        for r in store.rollups()
        if r.metric is metric
    }


def test_finishes_add_grouped_rollups_that_survive_purge(contract_store: ContractStore) -> None:
    store = contract_store
    store.insert_many(
        [
            Queued(make_job("paid-1", amount_minor=1000, currency="EUR")),
            Queued(make_job("paid-2", amount_minor=250, currency="EUR")),
            Queued(make_job("lost", amount_minor=700, currency="USD")),
            Queued(make_job("again", amount_minor=300, currency="USD")),
        ]
    )
    claimed = {c.job.transaction_id: c for c in store.claim(NOW, 10, LEASE)}
    at = NOW + timedelta(seconds=2)
    ok = Decision(Outcome.SUCCEEDED, ROW, "attempt succeeded", None, 3)
    hard = Decision(Outcome.FAILED, ROW, "never retried", None, 3)
    declined = AttemptResult.failure("card_declined", "stolen_card")
    finishes = [
        Finish(claimed["paid-1"], AttemptResult.success("r1"), ok, at, processor="simulated"),
        Finish(claimed["paid-2"], AttemptResult.success("r2"), ok, at, processor="simulated"),
        Finish(claimed["lost"], declined, hard, at, processor="simulated"),
        failed_retry(claimed["again"], at, NOW + timedelta(hours=1)),
    ]
    assert store.finish(finishes) == [True] * 4
    ended = _by(store, Metric.ENDED)
    assert ended == {("succeeded", "EUR"): (2, 1250, 0.0), ("failed", "USD"): (1, 700, 0.0)}
    codes = _by(store, Metric.CODE)
    assert codes[("processing_error|succeeded", "EUR")] == (2, 1250, 0.0)
    attempts = _by(store, Metric.ATTEMPT)
    assert attempts == {("1|succeeded", ""): (2, 0, 0.0), ("1|failed", ""): (2, 0, 0.0)}
    # created an hour before NOW, paid 2 s after it
    assert _by(store, Metric.RECOVERY) == {("21600.0", ""): (2, 0, 7204.0)}  # 1h 2s: the 6h bucket
    durations = _by(store, Metric.DURATION)  # 2 s each; failed_retry names no processor
    assert durations == {
        ("simulated|succeeded|2.5", ""): (2, 0, 4.0),
        ("simulated|failed|2.5", ""): (1, 0, 2.0),
    }
    histogram = store.processing_times()[("simulated", "succeeded")]
    assert (histogram.count, histogram.total) == (2, 4.0)
    assert all(r.day == DAY for r in store.rollups())
    assert store.rollups(DAY + timedelta(days=1)) == []
    before = store.rollups()
    assert store.purge(NOW + timedelta(days=1)) == 3
    assert store.rollups() == before  # never purged


def test_cancel_and_window_closed_end_jobs(contract_store: ContractStore) -> None:
    store = contract_store
    job = store.insert(Queued(make_job("stop", amount_minor=500)))
    store.cancel(Cancelled(job, NOW, "cancelled by an operator"))
    store.insert(Queued(make_job("late", amount_minor=900, expires_at=NOW)))
    assert len(store.abandon_expired(NOW)) == 1
    assert _by(store, Metric.ENDED) == {
        ("cancelled", "USD"): (1, 500, 0.0),
        ("abandoned", "USD"): (1, 900, 0.0),
    }


def test_rollups_of_many_batches_add_up(contract_store: ContractStore) -> None:
    store = contract_store
    for n in range(3):
        store.insert(Queued(make_job(f"t{n}", amount_minor=100)))
        [c] = store.claim(NOW, 1, LEASE)
        ok = Decision(Outcome.SUCCEEDED, ROW, "attempt succeeded", None, 3)
        store.finish([Finish(c, AttemptResult.success(), ok, NOW, processor="simulated")])
    assert _by(store, Metric.ENDED) == {("succeeded", "USD"): (3, 300, 0.0)}
    assert isinstance(store.rollups()[0], Rollup) and store.rollups()[0].day == date(2026, 11, 22)


def test_search_filters_and_pages(contract_store: ContractStore) -> None:
    store = contract_store
    jobs = [
        make_job("a", amount_minor=500, currency="EUR", user_id="u1"),
        make_job("b", amount_minor=1500, currency="EUR", user_id="u2", error_code="network_error"),
        make_job("c", amount_minor=2500, currency="USD", user_id="u1"),
        make_job("d", amount_minor=3500, currency="EUR", user_id="u1"),
    ]
    for job in jobs:  # one at a time: newest first is d, c, b, a
        store.insert(Queued(job))

    def txns(where: JobFilter, **kw: int) -> list[str]:
        return [j.transaction_id for j in store.search_jobs(where, **kw)]

    assert txns(JobFilter()) == ["d", "c", "b", "a"]
    assert txns(JobFilter(user_id="u1")) == ["d", "c", "a"]
    assert txns(JobFilter(code="network_error")) == ["b"]
    assert txns(JobFilter(currency="EUR", min_minor=1000, max_minor=3500)) == ["d", "b"]
    assert txns(JobFilter(state=JobState.SUCCEEDED)) == []
    first = store.search_jobs(JobFilter(), limit=2)
    assert [j.transaction_id for j in first] == ["d", "c"]
    assert txns(JobFilter(), before_seq=first[-1].seq, limit=2) == ["b", "a"]


def test_throughput_and_retries_per_user(contract_store: ContractStore) -> None:
    store = contract_store
    store.insert_many(
        [
            Queued(make_job("x1", user_id="u1")),
            Queued(make_job("x2", user_id="u1")),
            Queued(make_job("y1", user_id="u2")),
        ]
    )
    claimed = store.claim(NOW, 10, LEASE)
    store.finish([failed_retry(c, NOW, NOW + timedelta(minutes=5)) for c in claimed])
    assert store.throughput(NOW - timedelta(hours=1)) == {"failed": 3}
    assert store.throughput(NOW + timedelta(seconds=1)) == {}
    frequency = store.retry_frequency(NOW + timedelta(minutes=1))
    assert dict(frequency.users) == {2: 1, 1: 1}  # u1 retried twice, u2 once
    assert frequency.histogram()[0] == ("1", 1) and frequency.histogram()[-1] == ("+Inf", 2)
    assert store.retry_frequency(NOW + timedelta(days=2)).count == 0
    telemetry = store.telemetry(NOW + timedelta(minutes=1))
    assert telemetry.retry_frequency.total == 3
