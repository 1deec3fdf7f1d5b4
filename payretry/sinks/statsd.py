"""DogStatsD (the official `datadog` client), over UDP: a counter per event from the outbox,
and gauges of the queue each delivery pass (at most every `every` seconds).

- payments.retry.attempt_count (count, tag retry_attempt): an attempt started.
- payments.retry.failure_count (count, tags failure_reason, retry_attempt): an attempt failed;
  the reason is the decline code, else the error code.
- payments.retry.success_count (count, tag retry_attempt): an attempt succeeded.
- payments.retry.blocked (count, tag rule): a card-network rule stopped a job.
- payments.retry.evicted (count): a full queue ([queue] max_active) evicted a scheduled job.
- payments.retry.success_rate (gauge): succeeded / finished attempts, 0 to 1.
- retry_queue_size, retry_queue_due_now, retry_queue_oldest_due_age_seconds (gauges): active
  jobs, scheduled jobs due now, how long the oldest due job has waited.
- payretry.outbox.pending (gauge, tag sink): outbox entries a sink has yet to take.
- retry_processing_time (histogram, tags processor, outcome): seconds the processor took over
  an attempt, from each retry_success and retry_failed event.
- user_retry_frequency (gauge, tag le): users with at most `le` retries in the last 24 hours
  (`le:inf`: every user who had any); user_retry_frequency.max: the most any one user had.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from payretry.domain.events import Event, EventType
from payretry.domain.outbox import Telemetry


def tag_list(text: str) -> list[str]:
    return [tag.strip() for tag in text.split(",") if tag.strip()]


class StatsdSink:
    name = "statsd"

    def __init__(self, host: str, port: int, *, tags: Sequence[str] = (), every: float = 10.0):
        from datadog.dogstatsd.base import DogStatsd

        self.client = DogStatsd(
            host=host, port=port, constant_tags=list(tags), disable_telemetry=True
        )
        self.every = every
        self._reported = 0.0

    def send(self, events: Sequence[Event]) -> None:
        """Counters never fail the sink: UDP has no answer to wait for."""
        client = self.client
        for event in events:
            attempt = f"retry_attempt:{event.attempt}"
            if event.type is EventType.INITIATED:
                client.increment("payments.retry.attempt_count", tags=[attempt])
            elif event.type is EventType.SUCCESS:
                client.increment("payments.retry.success_count", tags=[attempt])
                self._duration(event, "succeeded")
            elif event.type is EventType.BLOCKED:
                rule = event.data.get("rule") or "unknown"
                client.increment("payments.retry.blocked", tags=[f"rule:{rule}"])
            elif event.type is EventType.EVICTED:
                client.increment("payments.retry.evicted")
            elif event.type is EventType.FAILED:
                reason = event.data.get("decline_code") or event.data.get("error_code")
                client.increment(
                    "payments.retry.failure_count",
                    tags=[f"failure_reason:{reason or 'unknown'}", attempt],
                )
                self._duration(event, "failed")

    def _duration(self, event: Event, outcome: str) -> None:
        took = event.data.get("duration_ms")
        processor = event.data.get("processor")
        if took is None or not processor:
            return
        self.client.histogram(
            "retry_processing_time",
            float(took) / 1000.0,
            tags=[f"processor:{processor}", f"outcome:{outcome}"],
        )

    def report_due(self) -> bool:
        return time.monotonic() - self._reported >= self.every

    def report(self, telemetry: Telemetry) -> None:
        client = self.client
        rate = telemetry.success_rate
        if rate is not None:
            client.gauge("payments.retry.success_rate", round(rate, 4))
        client.gauge("retry_queue_size", telemetry.queue_size)
        client.gauge("retry_queue_due_now", telemetry.due_now)
        client.gauge("retry_queue_oldest_due_age_seconds", telemetry.oldest_due_age.total_seconds())
        for sink, pending in telemetry.pending_events.items():
            client.gauge("payretry.outbox.pending", pending, tags=[f"sink:{sink}"])
        frequency = telemetry.retry_frequency
        for le, users in frequency.histogram():
            bound = "inf" if le == "+Inf" else le  # DogStatsD would turn "+" into "_"
            client.gauge("user_retry_frequency", users, tags=[f"le:{bound}"])
        client.gauge("user_retry_frequency.max", frequency.most)
        self._reported = time.monotonic()

    def close(self) -> None:
        self.client.close_socket()
