"""The card-network rules in the events and metrics: retry_postponed and retry_blocked in the
outbox, payments.retry.blocked counted by rule on DogStatsD (a real UDP socket) and on
Prometheus (parsed with prometheus-client's own parser)."""

from __future__ import annotations

import socket
from dataclasses import replace
from datetime import timedelta

from payretry.domain.card_checks import job_card, queue_entry
from payretry.domain.changes import Queued
from payretry.domain.events import EventType
from payretry.domain.models import JobState
from payretry.service.delivery import Delivery
from payretry.sinks.prometheus import families
from payretry.store.sql import SqlStore
from payretry.wiring.sinks import build_sinks
from tests.events.conftest import (
    T0,
    Clock,
    all_events,
    datagrams,
    parse_datagram,
    queue,
    run_due,
    settings,
)

MC = ("mastercard", "fpEvents1")


def blocked_card(store: SqlStore) -> None:
    """Two jobs on one Mastercard card, due now; a third job's queueing decline carried MAC 03
    ("do not try again"), which stops every job on the card for 30 days."""
    for txn in ("a", "b"):
        queue(store, txn, error_code="network_error", card_network=MC[0], card_fingerprint=MC[1])
    later = queue(
        store, "c", error_code="insufficient_funds", card_network=MC[0], card_fingerprint=MC[1]
    )
    stopped = replace(
        later, id="0" * 31 + "1", transaction_id="d", next_retry_at=T0 + timedelta(days=9)
    )
    card = job_card(stopped)
    assert card is not None
    entry = replace(queue_entry(stopped, card, T0), network_advice_code="03")
    store.insert(Queued(stopped, entry))


def test_a_block_at_claim_is_an_event_naming_its_rule(store: SqlStore) -> None:
    blocked_card(store)
    report = run_due(store, Clock())
    assert report.counts["blocked"] == 2 and report.processed == 0
    for txn in ("a", "b"):
        job = store.find(txn)
        assert job is not None and job.state is JobState.BLOCKED
    blocks = [e for e in all_events(store) if e.type is EventType.BLOCKED]
    assert len(blocks) == 2
    assert {e.data["rule"] for e in blocks} == {"mastercard_mac_03"}
    assert all(e.data["rule_source"].startswith("Mastercard Merchant Advice") for e in blocks)
    assert all(e.id.endswith(":1:retry_blocked") for e in blocks)  # the attempt never made


def test_payments_retry_blocked_is_counted_by_rule(store: SqlStore, udp: socket.socket) -> None:
    blocked_card(store)
    run_due(store, Clock())
    port = udp.getsockname()[1]
    built = build_sinks(settings(statsd_host="127.0.0.1", statsd_port=str(port)))
    [sink] = built.sinks
    try:
        [result] = Delivery(store, [sink], clock=Clock()).deliver()
        assert result.error is None
        metrics = [parse_datagram(line) for line in datagrams(udp)]
    finally:
        sink.close()
    blocked = [m for m in metrics if m[0] == "payments.retry.blocked"]
    assert (
        blocked == [("payments.retry.blocked", "1", "c", frozenset({"rule:mastercard_mac_03"}))] * 2
    )
    telemetry = store.telemetry(T0)
    assert telemetry.blocked_by_rule == {"mastercard_mac_03": 2}
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in families(telemetry)
        for s in family.samples
    }
    assert samples[("payments_retry_blocked", (("rule", "mastercard_mac_03"),))] == 2
