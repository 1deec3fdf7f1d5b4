"""Segment `track` calls received by a local collector (the official library pointed at its
host); DogStatsD datagrams received on a UDP socket; Prometheus text parsed with
prometheus-client's own parser."""

from __future__ import annotations

import base64
import socket
import urllib.request
from collections import Counter, deque
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from payretry.domain.outbox import Telemetry
from payretry.service.delivery import Delivery
from payretry.sinks.prometheus import serve_metrics, write_textfile
from payretry.sinks.segment import SegmentSink
from payretry.sinks.statsd import StatsdSink
from payretry.store.sql import SqlStore
from payretry.wiring.sinks import build_sinks
from tests.events.conftest import (
    T0,
    Clock,
    Receiver,
    all_events,
    datagrams,
    parse_datagram,
    queue,
    run_due,
    settings,
)

WRITE_KEY = "wk_test_segment_0123456789"


def busy_store(store: SqlStore) -> Clock:
    """One job paid on its second attempt, one failed for good, one still waiting."""
    queue(store, "paid", metadata={"simulate": "processing_error,succeeded"})
    queue(
        store,
        "lost",
        error_code="network_error",
        metadata={"simulate": "card_declined:stolen_card"},
    )
    queue(store, "later", error_code="insufficient_funds")
    clock = Clock()
    for minutes in (1, 6):
        clock.at(timedelta(minutes=minutes))
        run_due(store, clock)
    return clock


# -- Segment ------------------------------------------------------------------------------------


def test_segment_track_calls_reach_the_collector(store: SqlStore, receiver: Receiver) -> None:
    busy_store(store)
    [sink] = build_sinks(settings(segment_write_key=WRITE_KEY, segment_host=receiver.url)).sinks
    assert isinstance(sink, SegmentSink)
    [result] = Delivery(store, [sink], clock=Clock()).deliver()
    assert result.error is None
    [request] = receiver.requests
    assert request.path == "/v1/batch"
    assert (
        request.headers["Authorization"]
        == "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode()
    )
    batch = request.json()["batch"]
    assert {m["type"] for m in batch} == {"track"}
    names = [(m["properties"]["transaction_id"], m["event"]) for m in batch]
    assert names == [  # one claim of both, their outcomes, then paid's second attempt
        ("lost", "payments.retry.initiated"),
        ("paid", "payments.retry.initiated"),
        ("lost", "payments.retry.completed"),
        ("paid", "payments.retry.completed"),
        ("paid", "payments.retry.initiated"),
        ("paid", "payments.retry.completed"),
    ]
    completed = [m["properties"] for m in batch if m["event"] == "payments.retry.completed"]
    assert [(p["attempt"], p["success"]) for p in completed] == [(1, False), (1, False), (2, True)]
    assert completed[1]["will_retry"] is True and completed[0]["will_retry"] is False
    ids = {e.id for e in all_events(store)}
    for message in batch:
        assert message["messageId"] in ids  # Segment drops repeats by messageId
        assert message["userId"] == "usr_1"
        assert message["context"]["library"]["name"] == "analytics-python"
        assert WRITE_KEY not in str(message)


def test_segment_down_keeps_the_events(store: SqlStore, receiver: Receiver) -> None:
    queue(store, "t1", error_code="network_error", metadata={"simulate": "succeeded"})
    run_due(store, Clock())
    receiver.answers = deque([503])
    sink = SegmentSink(WRITE_KEY, receiver.url, timeout=5)
    delivery = Delivery(store, [sink], clock=Clock())
    [failed] = delivery.deliver()
    assert failed.error is not None and "503" in failed.error
    assert WRITE_KEY not in failed.error
    [ok] = Delivery(store, [sink], clock=Clock(T0 + timedelta(minutes=1))).deliver()
    assert ok.error is None
    assert [len(r.json()["batch"]) for r in receiver.requests] == [2, 2]  # the same, again


# -- DogStatsD ----------------------------------------------------------------------------------


def test_dogstatsd_counters_and_gauges(store: SqlStore, udp: socket.socket) -> None:
    clock = busy_store(store)
    port = udp.getsockname()[1]
    built = build_sinks(
        settings(statsd_host="127.0.0.1", statsd_port=str(port), statsd_tags="env:test")
    )
    [sink] = built.sinks
    assert isinstance(sink, StatsdSink) and built.gauges == [sink]
    try:
        [result] = Delivery(store, [sink], gauges=built.gauges, clock=clock).deliver()
        assert result.error is None
        lines = datagrams(udp)
    finally:
        sink.close()
    metrics = [parse_datagram(line) for line in lines]
    counters = Counter(m for m in metrics if m[2] == "c")
    attempt = {"env:test", "retry_attempt:1"}
    assert counters == Counter(
        [
            ("payments.retry.attempt_count", "1", "c", frozenset(attempt)),
            ("payments.retry.attempt_count", "1", "c", frozenset(attempt)),
            ("payments.retry.attempt_count", "1", "c", frozenset({"env:test", "retry_attempt:2"})),
            (
                "payments.retry.failure_count",
                "1",
                "c",
                frozenset(attempt | {"failure_reason:processing_error"}),
            ),
            (
                "payments.retry.failure_count",
                "1",
                "c",
                frozenset(attempt | {"failure_reason:stolen_card"}),
            ),
            ("payments.retry.success_count", "1", "c", frozenset({"env:test", "retry_attempt:2"})),
        ]
    )
    gauges = {(name, tags): value for name, value, kind, tags in metrics if kind == "g"}
    env = frozenset({"env:test"})
    assert gauges[("payments.retry.success_rate", env)] == "0.3333"
    assert gauges[("retry_queue_size", env)] == "1"
    assert gauges[("retry_queue_due_now", env)] == "0"
    assert gauges[("retry_queue_oldest_due_age_seconds", env)] == "0.0"
    assert gauges[("payretry.outbox.pending", env | {"sink:statsd"})] == "0"


# -- Prometheus ---------------------------------------------------------------------------------


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_prometheus_textfile_and_scrape_parse(store: SqlStore, tmp_path: Path) -> None:
    clock = busy_store(store)
    clock.at(timedelta(days=2))  # insufficient_funds waited 24h: due for a day now
    folder = tmp_path / "textfile"
    folder.mkdir()
    path = folder / "payretry.prom"
    write_textfile(str(path), store_read(store, clock), 1_700_000_000.0, {"processed": 3})
    assert [p.name for p in folder.iterdir()] == ["payretry.prom"]  # renamed into place
    found = samples(path.read_text())
    assert found[("payments_retry_attempt_count", (("retry_attempt", "1"),))] == 2
    assert found[("payments_retry_attempt_count", (("retry_attempt", "2"),))] == 1
    assert (
        found[
            (
                "payments_retry_failure_count",
                (("failure_reason", "stolen_card"), ("retry_attempt", "1")),
            )
        ]
        == 1
    )
    assert found[("payments_retry_success_rate", ())] == pytest.approx(1 / 3, abs=1e-4)
    assert found[("retry_queue_size", ())] == 1
    assert found[("retry_queue_due_now", ())] == 1
    assert found[("retry_queue_oldest_due_age_seconds", ())] == 86_400
    assert found[("payretry_jobs", (("state", "succeeded"),))] == 1
    assert found[("payretry_outbox_pending", (("sink", "webhook"),))] == 9  # changes, all
    assert found[("payretry_run_due_jobs", (("outcome", "processed"),))] == 3
    assert found[("payretry_run_due_last_run_timestamp_seconds", ())] == 1_700_000_000
    server, _ = serve_metrics(store_read(store, clock), 0, "127.0.0.1")
    try:
        port = server.server_port
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            scraped = samples(response.read().decode())
    finally:
        server.shutdown()
        server.server_close()
    assert scraped[("retry_queue_due_now", ())] == 1
    assert scraped[("payments_retry_attempt_count", (("retry_attempt", "1"),))] == 2


def store_read(store: SqlStore, clock: Clock) -> Callable[[], Telemetry]:
    return lambda: store.telemetry(clock(), ["webhook"])
