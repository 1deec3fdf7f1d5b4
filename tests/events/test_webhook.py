"""The webhook sink against a real HTTP server on loopback: signed, re-sent with backoff, at
least once; a receiver that is down delays its events and nothing else."""

from __future__ import annotations

import base64
from collections import deque
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from payretry.errors import ConfigError
from payretry.service.delivery import Delivery
from payretry.sinks.jsonl import JsonLinesSink
from payretry.sinks.webhook import WebhookSink, describe
from payretry.store.sql import SqlStore
from payretry.wiring.sinks import build_sinks
from tests.events.conftest import T0, Clock, Receiver, all_events, queue, run_due, settings


def webhook(receiver: Receiver, *, retries: int = 3) -> WebhookSink:
    return WebhookSink(
        receiver.url + "/hooks/payretry", receiver.secret, retries=retries, backoff=0.05
    )


def test_batches_are_signed_and_carry_every_event(store: SqlStore, receiver: Receiver) -> None:
    queue(store, "t1", metadata={"simulate": "succeeded"})
    run_due(store, Clock(T0 + timedelta(minutes=1)))
    [result] = Delivery(store, [webhook(receiver)], clock=Clock()).deliver()
    assert result.error is None and result.events == 4
    [request] = receiver.requests
    assert request.path == "/hooks/payretry"
    assert request.headers["Content-Type"] == "application/json"
    assert receiver.verified(request)
    sent = request.json()["events"]
    assert [e["type"] for e in sent] == [
        "retry_scheduled",
        "user_notification",
        "retry_initiated",
        "retry_success",
    ]
    assert [e["id"] for e in sent] == [e.id for e in all_events(store)]
    # A body changed in transit, or another secret, does not verify.
    assert not receiver.verified(replace(request, body=request.body.replace(b"t1", b"t2")))
    other = Receiver(secret="not-the-secret")
    assert not other.verified(request)


def test_a_500_then_200_is_delivered_once_after_a_retry(
    store: SqlStore, receiver: Receiver
) -> None:
    queue(store, "t1")
    receiver.answers = deque([500])
    [result] = Delivery(store, [webhook(receiver)], clock=Clock()).deliver()
    assert result.error is None and result.events == 2
    assert [r.status for r in receiver.requests] == [500, 200]
    assert all(receiver.verified(r) for r in receiver.requests)
    assert receiver.requests[0].body == receiver.requests[1].body  # the same batch again
    assert set(receiver.accepted.values()) == {1}  # each event accepted once
    assert store.sink_states()["webhook"].failures == 0


def test_a_receiver_down_for_a_while_gets_its_events_when_it_returns(
    store: SqlStore, receiver: Receiver, tmp_path: Path
) -> None:
    queue(store, "t1", metadata={"simulate": "succeeded"})
    receiver.stop()  # the port is known and closed: connections are refused
    clock = Clock()
    file_sink = JsonLinesSink(str(tmp_path / "events.jsonl"))
    delivery = Delivery(store, [webhook(receiver, retries=1), file_sink], clock=clock)
    down, fine = delivery.deliver()
    assert down.error is not None and "no answer" in down.error
    assert fine.error is None and fine.events == 2  # another sink is not held up
    clock.at(timedelta(seconds=0.5))
    skipped = delivery.deliver()[0]
    assert skipped.skipped == "backing off after a failure"
    assert skipped.retry_at == T0 + timedelta(seconds=1)
    # Retries are not held up: the job runs and its outcome is recorded meanwhile.
    clock.at(timedelta(minutes=1))
    assert run_due(store, clock).processed == 1
    assert delivery.deliver()[0].error is not None  # still down: it backs off further
    state = store.sink_states()["webhook"]
    assert state.failures == 2 and state.retry_at == T0 + timedelta(minutes=1, seconds=2)
    assert store.count_after(state.cursor) == 3  # queued, started, succeeded: all waiting
    receiver.start()  # back, on the same port
    clock.at(timedelta(minutes=1, seconds=5))
    back, _ = delivery.deliver()
    assert back.error is None and back.events == 4
    assert set(receiver.accepted) == {e.id for e in all_events(store)}
    assert set(receiver.accepted.values()) == {1}
    assert all(receiver.verified(r) for r in receiver.requests)
    assert store.sink_states()["webhook"].failures == 0


def test_a_redirect_is_a_failure(store: SqlStore, receiver: Receiver) -> None:
    queue(store, "t1")
    receiver.answers = deque([302, 302])
    [result] = Delivery(store, [webhook(receiver, retries=1)], clock=Clock()).deliver()
    assert result.error is not None and "HTTP 302" in result.error
    assert receiver.accepted == {}


def test_configuration(receiver: Receiver) -> None:
    with pytest.raises(ConfigError, match="secret"):
        build_sinks(settings(webhook_url=receiver.url))
    with pytest.raises(ConfigError, match="http or https"):
        build_sinks(settings(webhook_url="ftp://host/x", webhook_secret="s"))
    [sink] = build_sinks(
        settings(webhook_url=receiver.url, webhook_secret="s", webhook_retries="0")
    ).sinks
    assert isinstance(sink, WebhookSink) and sink.retries == 0
    assert describe("https://user:pw@hooks.example:8443/p/x?token=abc#f") == (
        "https://hooks.example:8443/p/x"
    )


def test_credentials_in_the_url_become_basic_auth(store: SqlStore, receiver: Receiver) -> None:
    queue(store, "t1")
    url = f"http://hook%40ops:p%3Ass@127.0.0.1:{receiver.port}/in"
    sink = WebhookSink(url, receiver.secret)
    [result] = Delivery(store, [sink], clock=Clock()).deliver()
    assert result.error is None
    [request] = receiver.requests
    assert request.path == "/in" and receiver.verified(request)
    assert (
        request.headers["Authorization"] == "Basic " + base64.b64encode(b"hook@ops:p:ss").decode()
    )
