"""The two distribution metrics: retry_processing_time (attempt durations by processor and
outcome, a histogram) and user_retry_frequency (retries per user over 24 hours, as users per
bucket, never a label per user), on Prometheus (parsed with prometheus-client's own parser) and
DogStatsD (datagrams on a UDP socket)."""

from __future__ import annotations

import socket
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta

from prometheus_client.parser import text_string_to_metric_families

from payretry.domain.results import AttemptRequest, AttemptResult
from payretry.processors.simulated import SimulatedProcessor
from payretry.service.delivery import Delivery
from payretry.service.runner import Runner
from payretry.sinks.prometheus import exposition
from payretry.store.sql import SqlStore
from payretry.wiring.sinks import build_sinks
from tests.events.conftest import POLICY, Clock, datagrams, parse_datagram, queue, settings


@dataclass
class Slow:
    """The simulated processor, taking `seconds` of the test's clock per attempt."""

    clock: Clock
    seconds: float
    inner: SimulatedProcessor
    name: str = "slowsim"
    needs_history: bool = False
    rate: float | None = None

    def attempt(self, request: AttemptRequest) -> AttemptResult:
        self.clock.now += timedelta(seconds=self.seconds)
        return self.inner.attempt(request)

    def close(self) -> None:
        self.inner.close()


def history(store: SqlStore) -> Clock:
    """usr_1: two jobs, one paid and one failed for good, 0.3 s each; usr_2: one paid, 0.3 s."""
    queue(store, "a1", user_id="usr_1")
    queue(store, "a2", user_id="usr_1", metadata={"simulate": "card_declined:stolen_card"})
    queue(store, "b1", user_id="usr_2")
    clock = Clock()
    clock.at(timedelta(minutes=1))
    processor = Slow(clock, 0.3, SimulatedProcessor(success_rate=1.0))
    Runner(store, POLICY, processor, clock=clock).run_due()
    return clock


def test_prometheus_histograms(store: SqlStore) -> None:
    clock = history(store)
    text, _ = exposition(lambda: store.telemetry(clock(), []))
    families = {f.name: f for f in text_string_to_metric_families(text.decode())}
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for s in families["retry_processing_time"].samples
    }
    ok = (("outcome", "succeeded"), ("processor", "slowsim"))
    assert samples[("retry_processing_time_bucket", (("le", "0.25"), *ok))] == 0
    assert samples[("retry_processing_time_bucket", (("le", "0.5"), *ok))] == 2
    assert samples[("retry_processing_time_bucket", (("le", "+Inf"), *ok))] == 2
    assert samples[("retry_processing_time_count", ok)] == 2
    assert abs(samples[("retry_processing_time_sum", ok)] - 0.6) < 1e-6
    failed = (("outcome", "failed"), ("processor", "slowsim"))
    assert samples[("retry_processing_time_count", failed)] == 1
    users = {
        (s.name, s.labels.get("le")): s.value for s in families["user_retry_frequency"].samples
    }
    assert users[("user_retry_frequency_bucket", "1")] == 1  # usr_2
    assert users[("user_retry_frequency_bucket", "2")] == 2  # and usr_1
    assert users[("user_retry_frequency_count", None)] == 2
    assert users[("user_retry_frequency_sum", None)] == 3
    assert all("user_id" not in s.labels for s in families["user_retry_frequency"].samples)
    clock.at(timedelta(days=2))  # out of the 24-hour window; the durations stay
    later, _ = exposition(lambda: store.telemetry(clock(), []))
    assert "user_retry_frequency_count 0.0" in later.decode()
    assert 'retry_processing_time_count{outcome="succeeded",processor="slowsim"} 2.0' in (
        later.decode()
    )


def test_dogstatsd_histogram_and_frequency(store: SqlStore, udp: socket.socket) -> None:
    clock = history(store)
    port = udp.getsockname()[1]
    built = build_sinks(settings(statsd_host="127.0.0.1", statsd_port=str(port)))
    [sink] = built.sinks
    try:
        [result] = Delivery(store, [sink], gauges=built.gauges, clock=clock).deliver()
        assert result.error is None
        metrics = [parse_datagram(line) for line in datagrams(udp)]
    finally:
        sink.close()
    timings = Counter(
        (value, tags) for name, value, kind, tags in metrics if name == "retry_processing_time"
    )
    assert [kind for name, _, kind, _ in metrics if name == "retry_processing_time"] == ["h"] * 3
    assert timings == Counter(
        {
            ("0.3", frozenset({"processor:slowsim", "outcome:failed"})): 1,
            ("0.3", frozenset({"processor:slowsim", "outcome:succeeded"})): 2,
        }
    )
    gauges = {(name, tags): value for name, value, kind, tags in metrics if kind == "g"}
    assert gauges[("user_retry_frequency", frozenset({"le:1"}))] == "1"
    assert gauges[("user_retry_frequency", frozenset({"le:inf"}))] == "2"
    assert gauges[("user_retry_frequency.max", frozenset())] == "2"
