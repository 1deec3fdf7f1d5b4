"""A full queue's eviction in the events and metrics: retry_evicted (and the customer's failed
notification) in the outbox, payments.retry.evicted counted on DogStatsD (a real UDP socket) and
payments_retry_evicted on Prometheus."""

from __future__ import annotations

import socket

from payretry.domain.bound import QueueBound
from payretry.domain.changes import Queued
from payretry.domain.events import EventType
from payretry.service.delivery import Delivery
from payretry.sinks.prometheus import families
from payretry.store.sql import SqlStore
from payretry.wiring.sinks import build_sinks
from tests.contract.test_store_contract import make_job
from tests.events.conftest import T0, Clock, all_events, datagrams, parse_datagram, settings


def test_an_eviction_is_an_event_and_a_metric(store: SqlStore, udp: socket.socket) -> None:
    low = make_job("txn-low", priority=1)
    store.insert(Queued(low))
    new = make_job("txn-new", priority=2, created_at=T0)
    store.insert(Queued(new), bound=QueueBound(1))
    evicted = [e for e in all_events(store) if e.job_id == low.id][-2:]
    assert [e.type for e in evicted] == [EventType.EVICTED, EventType.NOTIFICATION]
    assert evicted[0].as_dict()["evicted_by_transaction"] == "txn-new"
    assert evicted[0].data["state"] == "evicted" and evicted[1].data["notification"] == "failed"
    port = udp.getsockname()[1]
    built = build_sinks(settings(statsd_host="127.0.0.1", statsd_port=str(port)))
    [sink] = built.sinks
    try:
        [result] = Delivery(store, [sink], clock=Clock()).deliver()
        assert result.error is None
        metrics = [parse_datagram(line) for line in datagrams(udp)]
    finally:
        sink.close()
    assert [m for m in metrics if m[0] == "payments.retry.evicted"] == [
        ("payments.retry.evicted", "1", "c", frozenset())
    ]
    samples = {s.name: s.value for family in families(store.telemetry(T0)) for s in family.samples}
    assert samples["payments_retry_evicted"] == 1
