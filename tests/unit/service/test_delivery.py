"""Event delivery on the in-memory store: every sink gets every event in order, at least once;
a failing sink backs off (1 s doubling to the cap) while the others go on; one process at a
time delivers to a sink; gauges are reported after their sink; purge keeps what a sink lacks."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import timedelta

from payretry.domain.events import Event
from payretry.domain.outbox import Cursor, SinkError, Telemetry
from payretry.service.delivery import Delivery
from payretry.testing import ManualClock, MemoryStore
from tests.unit.service.conftest import T0, queue

SECOND = timedelta(seconds=1)


class Recording:
    """A sink that keeps what it is sent; `failing` makes it fail; `during` runs in send."""

    def __init__(self, name: str = "recording") -> None:
        self.name = name
        self.batches: list[list[str]] = []
        self.failing: Exception | None = None
        self.during: Callable[[], None] | None = None
        self.closed = False

    def send(self, events: Sequence[Event]) -> None:
        if self.during is not None:
            self.during()
        if self.failing is not None:
            raise self.failing
        self.batches.append([e.id for e in events])

    def close(self) -> None:
        self.closed = True

    @property
    def ids(self) -> list[str]:
        return [i for batch in self.batches for i in batch]


class Gauges:
    name = "recording"

    def __init__(self) -> None:
        self.reports: list[Telemetry] = []

    def report_due(self) -> bool:
        return True

    def report(self, telemetry: Telemetry) -> None:
        self.reports.append(telemetry)


def every_id(store: MemoryStore) -> list[str]:
    return [e.id for entry in store.entries_after(Cursor(), 1000) for e in entry.events()]


def test_every_event_is_delivered_in_order_in_batches(
    store: MemoryStore, clock: ManualClock
) -> None:
    for n in range(5):
        queue(store, f"t{n}")
    sink = Recording()
    [result] = Delivery(store, [sink], clock=clock, batch_size=2).deliver()
    assert (result.entries, result.events, result.error) == (5, 10, None)
    assert [len(b) for b in sink.batches] == [4, 4, 2]  # two entries, two events each
    assert sink.ids == every_id(store)
    state = store.sink_states()["recording"]
    assert state.delivered == 5 and state.lease_token is None
    assert store.count_after(state.cursor) == 0
    [again] = Delivery(store, [sink], clock=clock).deliver()
    assert again.entries == 0 and len(sink.batches) == 3


def test_a_failing_sink_backs_off_and_the_others_go_on(
    store: MemoryStore, clock: ManualClock
) -> None:
    queue(store, "t1")
    down, fine = Recording("down"), Recording("fine")
    down.failing = SinkError("receiver unreachable")
    delivery = Delivery(store, [down, fine], clock=clock, max_backoff=timedelta(seconds=5))
    waits = []
    for _ in range(5):
        failed, ok = delivery.deliver()
        assert failed.error == "receiver unreachable" and failed.retry_at is not None
        waits.append(failed.retry_at - clock())
        assert delivery.deliver()[0].skipped == "backing off after a failure"
        clock.set(failed.retry_at)
    assert waits == [SECOND, 2 * SECOND, 4 * SECOND, 5 * SECOND, 5 * SECOND]  # capped
    assert fine.ids == every_id(store) and down.ids == []
    assert store.sink_states()["down"].failures == 5
    down.failing = None
    [recovered, _] = delivery.deliver()
    assert recovered.entries == 1 and down.ids == every_id(store)
    assert store.sink_states()["down"].failures == 0


def test_a_bug_in_a_sink_is_a_failure_of_that_sink_only(
    store: MemoryStore, clock: ManualClock
) -> None:
    queue(store, "t1")
    broken = Recording("broken")
    broken.failing = KeyError("surprise")
    [result] = Delivery(store, [broken], clock=clock).deliver()
    assert result.error == "KeyError: 'surprise'" and result.retry_at == clock() + SECOND


def test_one_process_at_a_time_delivers_to_a_sink(store: MemoryStore, clock: ManualClock) -> None:
    queue(store, "t1")
    assert store.lease_sink("recording", clock(), timedelta(minutes=5))  # another process
    sink = Recording()
    [result] = Delivery(store, [sink], clock=clock).deliver()
    assert result.skipped == "another process is delivering to it" and sink.batches == []
    clock.advance(minutes=6)  # its lease lapses: it died
    [later] = Delivery(store, [sink], clock=clock).deliver()
    assert later.entries == 1


def test_a_lease_lost_mid_delivery_stops_it(store: MemoryStore, clock: ManualClock) -> None:
    for n in range(3):
        queue(store, f"t{n}")
    sink = Recording()

    def taken_over() -> None:  # we stalled past our lease; another process took the sink
        later = clock.advance(minutes=6)
        store.lease_sink("recording", later, timedelta(minutes=5))

    sink.during = taken_over
    [result] = Delivery(store, [sink], clock=clock, batch_size=1).deliver()
    assert result.entries == 0 and len(sink.batches) == 1  # sent, but not ours to record
    assert store.sink_states()["recording"].cursor == Cursor()


def test_gauges_are_reported_after_their_sink(store: MemoryStore, clock: ManualClock) -> None:
    queue(store, "t1")
    gauges = Gauges()
    Delivery(store, [Recording()], gauges=[gauges], clock=clock).deliver()
    [telemetry] = gauges.reports
    assert telemetry.queue_size == 1 and telemetry.pending_events == {"recording": 0}


def test_purge_keeps_what_a_sink_has_not_taken(store: MemoryStore, clock: ManualClock) -> None:
    queue(store, "t1")
    queue(store, "t2")
    sink = Recording()
    delivery = Delivery(store, [sink], clock=clock, batch_size=1)
    delivery.deliver(limit=1)
    assert delivery.purge(T0 + timedelta(days=60)) == 1
    assert [e.data["transaction_id"] for e in store.entries_after(Cursor(), 10)] == ["t2"]
    delivery.close()
    assert sink.closed
