"""Prometheus, through prometheus-client: the same numbers as `payretry stats`, read from the
database at each scrape (`serve --metrics-port`) or written once per run for the node
exporter's textfile collector (`run-due --metrics-textfile`, written to a temporary file and
renamed into place).

Read from the database, the numbers agree across every process (cron runs, several daemons):
they are gauges of what is stored, and fall when `purge` removes old jobs.

- payments_retry_attempt_count{retry_attempt}: attempts recorded, by attempt number.
- payments_retry_failure_count{failure_reason,retry_attempt}: failed attempts; the reason is
  the decline code, else the error code.
- payments_retry_success_rate: succeeded / finished attempts, 0 to 1 (absent before any).
- retry_queue_size, retry_queue_due_now, retry_queue_oldest_due_age_seconds.
- payretry_jobs{state}; payretry_outbox_pending{sink}: entries a sink has yet to take.
- payments_retry_blocked{rule}: jobs blocked by a card-network rule, by the rule.
- payments_retry_evicted: jobs evicted from a full queue ([queue] max_active).
- retry_processing_time{processor,outcome}: a histogram of how long the processor took over
  each attempt, in seconds (from the daily rollups, so it never falls).
- user_retry_frequency: a histogram of retries per user over the last 24 hours (one
  observation per user who had any; buckets, never a label per user).
- run-due's textfile adds payretry_run_due_last_run_timestamp_seconds and
  payretry_run_due_jobs{outcome} for the run that wrote it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, write_to_textfile
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from payretry.domain.analytics import duration_bounds
from payretry.domain.outbox import Telemetry
from payretry.errors import PayretryError

if TYPE_CHECKING:
    from threading import Thread
    from wsgiref.simple_server import WSGIServer


def families(t: Telemetry) -> Iterable[Metric]:
    attempts = GaugeMetricFamily(
        "payments_retry_attempt_count", "Retry attempts recorded", labels=["retry_attempt"]
    )
    for number, count in t.attempts_by_number.items():
        attempts.add_metric([str(number)], count)
    yield attempts
    failures = GaugeMetricFamily(
        "payments_retry_failure_count",
        "Failed retry attempts",
        labels=["failure_reason", "retry_attempt"],
    )
    for (reason, number), count in t.failures.items():
        failures.add_metric([reason, str(number)], count)
    yield failures
    if t.success_rate is not None:
        yield GaugeMetricFamily(
            "payments_retry_success_rate",
            "Succeeded / finished retry attempts",
            value=round(t.success_rate, 6),
        )
    yield GaugeMetricFamily(
        "retry_queue_size", "Active retry jobs (scheduled, running, awaiting_payer)", t.queue_size
    )
    yield GaugeMetricFamily("retry_queue_due_now", "Scheduled jobs due now", t.due_now)
    yield GaugeMetricFamily(
        "retry_queue_oldest_due_age_seconds",
        "How long the oldest due job has waited",
        t.oldest_due_age.total_seconds(),
    )
    jobs = GaugeMetricFamily("payretry_jobs", "Retry jobs by state", labels=["state"])
    for state, count in sorted(t.by_state.items()):
        jobs.add_metric([state], count)
    yield jobs
    blocked = GaugeMetricFamily(
        "payments_retry_blocked", "Jobs blocked by a card-network rule", labels=["rule"]
    )
    for rule, count in t.blocked_by_rule.items():
        blocked.add_metric([rule], count)
    yield blocked
    yield GaugeMetricFamily(
        "payments_retry_evicted",
        "Jobs evicted from a full queue ([queue] max_active) by a job of higher priority",
        t.by_state.get("evicted", 0),
    )
    pending = GaugeMetricFamily(
        "payretry_outbox_pending", "Outbox entries a sink has yet to take", labels=["sink"]
    )
    for sink, count in t.pending_events.items():
        pending.add_metric([sink], count)
    yield pending
    yield from distributions(t)


def distributions(t: Telemetry) -> Iterable[Metric]:
    processing = HistogramMetricFamily(
        "retry_processing_time",
        "How long the processor took over a retry attempt, in seconds",
        labels=["processor", "outcome"],
    )
    bounds = duration_bounds()
    for (processor, outcome), histogram in t.processing.items():
        processing.add_metric(
            [processor, outcome],
            buckets=[(le, float(n)) for le, n in histogram.cumulative(bounds)],
            sum_value=round(histogram.total, 6),
        )
    yield processing
    frequency = t.retry_frequency
    users = HistogramMetricFamily(
        "user_retry_frequency",
        "Retries per user over the last 24 hours (users who had any)",
    )
    users.add_metric(
        [], buckets=[(le, float(n)) for le, n in frequency.histogram()], sum_value=frequency.total
    )
    yield users


class StoreCollector(Collector):
    """Reads the store at each collection."""

    def __init__(
        self, read: Callable[[], Telemetry], extra: Callable[[], Iterable[Metric]] | None = None
    ) -> None:
        self.read = read
        self.extra = extra

    def collect(self) -> Iterable[Metric]:
        yield from families(self.read())
        if self.extra is not None:
            yield from self.extra()


def registry(
    read: Callable[[], Telemetry], extra: Callable[[], Iterable[Metric]] | None = None
) -> CollectorRegistry:
    found = CollectorRegistry(auto_describe=False)
    found.register(StoreCollector(read, extra))
    return found


def serve_metrics(read: Callable[[], Telemetry], port: int, addr: str) -> tuple[WSGIServer, Thread]:
    """`/metrics` on addr:port, in a daemon thread; `server.shutdown()` stops it."""
    from prometheus_client import start_http_server

    try:
        return start_http_server(port, addr=addr, registry=registry(read))
    except OSError as exc:
        raise PayretryError(
            f"cannot serve metrics on {addr}:{port}: {exc.strerror or exc}"
        ) from None


def run_families(finished_at: float, counts: Mapping[str, int]) -> Iterable[Metric]:
    yield GaugeMetricFamily(
        "payretry_run_due_last_run_timestamp_seconds",
        "When the run-due that wrote this file finished (Unix time)",
        finished_at,
    )
    jobs = GaugeMetricFamily(
        "payretry_run_due_jobs", "Jobs of the last run-due, by outcome", labels=["outcome"]
    )
    for outcome, count in sorted(counts.items()):
        jobs.add_metric([outcome], count)
    yield jobs


def write_textfile(
    path: str, read: Callable[[], Telemetry], finished_at: float, counts: Mapping[str, int]
) -> None:
    """Written to `<path>.<pid>.<thread>` and renamed over `path` (prometheus-client's own
    write_to_textfile), so the collector never reads half a file."""
    write_to_textfile(path, registry(read, lambda: run_families(finished_at, counts)))


def exposition(read: Callable[[], Telemetry]) -> tuple[bytes, str]:
    """The scrape of /metrics on the HTTP API's server: the registry's text and its type."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    return generate_latest(registry(read)), CONTENT_TYPE_LATEST
