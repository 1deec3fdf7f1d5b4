"""The Sink contract, on every sink against its local peer: JSON lines into a file, the signed
webhook and the Segment collector against a real HTTP receiver on loopback, DogStatsD against
a UDP socket (the peers of tests/events).

A batch is delivered whole, or `send` raises SinkError: never a partial delivery reported as a
success (the outbox then offers the batch again). Events carry the outbox's stable ids, so a
batch sent again carries the same ids and the receiver drops the repeats. A sink that cannot
meet a case says why (UDP has no answer to fail on, and counters carry no id).

The events are real: jobs queued and run through the service on the in-memory store.
"""

from __future__ import annotations

import json
import shutil
import socket
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from payretry.domain.events import ANALYTICS, Event, EventType, events_of
from payretry.domain.outbox import Cursor, Sink, SinkError
from payretry.domain.policy import RetryPolicy
from payretry.processors.simulated import SimulatedProcessor
from payretry.service.intake import new_job
from payretry.service.operations import Operations
from payretry.service.runner import Runner
from payretry.sinks.jsonl import JsonLinesSink
from payretry.sinks.segment import SegmentSink
from payretry.sinks.statsd import StatsdSink
from payretry.sinks.webhook import WebhookSink
from payretry.testing import ManualClock, MemoryStore
from tests.events.conftest import (  # noqa: F401  (fixtures)
    Receiver,
    _loopback_without_proxies,
    datagrams,
    parse_datagram,
    receiver,
    udp,
)

T0 = datetime(2026, 11, 22, 12, 0, 0, tzinfo=UTC)
POLICY = RetryPolicy.standard()
WRITE_KEY = "wk_test_segment_0123456789"
_COUNTERS = {
    EventType.INITIATED: "payments.retry.attempt_count",
    EventType.SUCCESS: "payments.retry.success_count",
    EventType.FAILED: "payments.retry.failure_count",
}


@dataclass
class SinkUnderTest:
    sink: Sink
    received: Callable[[], list[str]]  # what the peer took, in order, repeats included
    expected: Callable[[Sequence[Event]], list[str]]  # what it should take of these events
    carries_ids: bool
    # Making the peer fail, or why it cannot fail; `mend` puts it right again.
    break_peer: Callable[[], None] | str
    fail_midway: Callable[[], None] | str  # the peer takes the first part, then fails
    mend: Callable[[], None]


def outbox(jobs: int) -> MemoryStore:
    """`jobs` payments queued and retried through the service: half paid, half failed."""
    store, clock = MemoryStore(), ManualClock(T0)
    operations = Operations(store, POLICY)
    for n in range(jobs):
        plan = "succeeded" if n % 2 == 0 else "card_declined:stolen_card"
        fields = {
            "transaction_id": f"txn-{n}",
            "user_id": f"usr-{n}",
            "amount": "12.50",
            "currency": "EUR",
            "error_code": "network_error",
            "metadata": {"simulate": plan},
        }
        operations.queue(new_job(fields, now=T0), T0)
    Runner(store, POLICY, SimulatedProcessor(), clock=clock).run_due()
    return store


def events(store: MemoryStore) -> list[Event]:
    """The outbox's events, read afresh each time (as delivery reads them after a crash)."""
    return events_of(store.entries_after(Cursor(), 100_000))


def ids(found: Sequence[Event]) -> list[str]:
    return [e.id for e in found]


def file_sink(tmp_path: Path) -> SinkUnderTest:
    folder = tmp_path / "out"
    folder.mkdir()
    path = folder / "events.jsonl"

    def received() -> list[str]:
        lines = path.read_text().splitlines() if path.exists() else []
        return [json.loads(line)["id"] for line in lines]

    def gone() -> None:
        shutil.rmtree(folder)

    return SinkUnderTest(
        JsonLinesSink(str(path)),
        received,
        ids,
        True,
        gone,
        "one write per batch: all of it or an error",
        lambda: folder.mkdir(exist_ok=True),
    )


def answering(peer: Receiver, key: str) -> Callable[[], list[str]]:
    def received() -> list[str]:
        found = []
        for request in peer.requests:
            if 200 <= request.status < 300:
                found += [item[key] for item in request.json()[_BODY[key]]]
        return found

    return received


_BODY = {"id": "events", "messageId": "batch"}


def webhook_sink(peer: Receiver) -> SinkUnderTest:
    sink = WebhookSink(peer.url + "/hooks/payretry", peer.secret, retries=1, backoff=0.01)
    return SinkUnderTest(
        sink,
        answering(peer, "id"),
        ids,
        True,
        lambda: peer.answers.extend([503] * 10),
        "one request per batch: accepted whole or not at all",
        peer.answers.clear,
    )


def segment_sink(peer: Receiver) -> SinkUnderTest:
    def analytics(found: Sequence[Event]) -> list[str]:
        return [e.id for e in found if e.type in ANALYTICS]  # the only events it sends

    return SinkUnderTest(
        SegmentSink(WRITE_KEY, peer.url, timeout=5),
        answering(peer, "messageId"),
        analytics,
        True,
        lambda: peer.answers.extend([503] * 10),
        lambda: peer.answers.extend([200, 503]),  # 100 messages a request: the first goes
        peer.answers.clear,
    )


def statsd_sink(sock: socket.socket) -> SinkUnderTest:
    def received() -> list[str]:
        return sorted(name for name, _, kind, _ in map(parse_datagram, datagrams(sock)))

    def counters(found: Sequence[Event]) -> list[str]:
        names = [_COUNTERS[e.type] for e in found if e.type in _COUNTERS]
        # and the processor's time over each finished attempt, a histogram
        timed = (EventType.SUCCESS, EventType.FAILED)
        names += [
            "retry_processing_time"
            for e in found
            if e.type in timed and e.data.get("duration_ms") is not None
        ]
        return sorted(names)

    udp_only = "DogStatsD is UDP: no answer comes back, so a send cannot fail"
    return SinkUnderTest(
        StatsdSink("127.0.0.1", sock.getsockname()[1]),
        received,
        counters,
        False,
        udp_only,
        udp_only,
        lambda: None,
    )


@pytest.fixture(params=["file", "webhook", "segment", "statsd"])
def contract_sink(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SinkUnderTest]:
    if request.param == "file":
        under = file_sink(tmp_path)
    elif request.param == "webhook":
        under = webhook_sink(request.getfixturevalue("receiver"))
    elif request.param == "segment":
        under = segment_sink(request.getfixturevalue("receiver"))
    else:
        under = statsd_sink(request.getfixturevalue("udp"))
    yield under
    under.sink.close()


def test_a_batch_is_delivered_whole(contract_sink: SinkUnderTest) -> None:
    under = contract_sink
    batch = events(outbox(6))
    # Paid: scheduled, its notice, initiated, succeeded; failed: ... failed, its notice.
    assert len(batch) == 3 * 4 + 3 * 5
    under.sink.send(batch)
    assert under.received() == under.expected(batch)
    if under.carries_ids:
        assert under.expected(batch) and len(set(under.received())) == len(under.received())


def test_a_peer_that_is_down_is_a_sink_error(contract_sink: SinkUnderTest) -> None:
    under = contract_sink
    if isinstance(under.break_peer, str):
        pytest.skip(under.break_peer)
    store = outbox(4)
    under.break_peer()
    with pytest.raises(SinkError):
        under.sink.send(events(store))
    assert under.received() == []
    under.mend()
    under.sink.send(events(store))  # offered again, as delivery does
    assert under.received() == under.expected(events(store))


def test_a_batch_taken_in_part_is_an_error_not_a_success(contract_sink: SinkUnderTest) -> None:
    under = contract_sink
    if isinstance(under.fail_midway, str):
        pytest.skip(under.fail_midway)
    store = outbox(60)  # 120 analytics events: more than one request's worth
    under.fail_midway()
    with pytest.raises(SinkError):
        under.sink.send(events(store))
    taken = under.received()
    assert 0 < len(taken) < len(under.expected(events(store)))
    under.mend()
    under.sink.send(events(store))
    assert set(under.received()) == set(under.expected(events(store)))  # nothing lost


def test_a_batch_sent_again_carries_the_same_ids(contract_sink: SinkUnderTest) -> None:
    under = contract_sink
    if not under.carries_ids:
        pytest.skip("counters carry no event id: a re-sent batch counts again (at least once)")
    store = outbox(4)
    under.sink.send(events(store))
    first = under.received()
    under.sink.send(events(store))  # a crash before the cursor moved: the same batch again
    assert under.received() == first + first
    assert set(first) == set(under.expected(events(store)))
