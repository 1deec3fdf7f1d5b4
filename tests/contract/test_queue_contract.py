"""The RetryQueue contract, on every queue: the in-memory twin (payretry.testing.MemoryQueue, on
a clock the test moves) and SQS through payretry's adapter against the moto server (real time:
the waits here are a second or so). Send with a delay, receive and hide, receive counts,
delete, the dead-letter queue after maxReceiveCount receives, depth, errors as QueueError."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import boto3
import pytest
from botocore.config import Config

from payretry.dispatch.sqs import SqsQueue
from payretry.domain.dispatch import Outgoing, Received, RetryMessage, RetryQueue
from payretry.errors import QueueError
from payretry.testing import ManualClock, MemoryQueue
from tests.sqs.conftest import moto_endpoint  # noqa: F401  (the session's moto server)
from tests.stripe.conftest import free_port

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

T0 = datetime(2026, 11, 22, 12, 0, 0, tzinfo=UTC)
MAX_RECEIVES = 5  # the dead-letter queue's maxReceiveCount in both set-ups


@dataclass
class QueueUnderTest:
    queue: RetryQueue
    wait: Callable[[float], object]  # let `seconds` pass for the queue
    dead_letters: RetryQueue
    unreachable: Callable[[], RetryQueue]  # the same queue, when it does not answer


def sqs_client(endpoint: str) -> SQSClient:
    """A client with dummy credentials (nothing from the developer's own AWS set-up)."""
    session = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    )
    config = Config(connect_timeout=1, retries={"total_max_attempts": 1})
    return session.client("sqs", endpoint_url=endpoint, config=config)


@pytest.fixture(scope="module")
def moto_client(moto_endpoint: str) -> Iterator[SQSClient]:  # noqa: F811
    """One client for the module: building one costs a second, a pair of queues a few ms."""
    client = sqs_client(moto_endpoint)
    yield client
    client.close()


def fresh_queues(client: SQSClient) -> tuple[SqsQueue, SqsQueue]:
    """A queue of this test's own and its dead-letter queue (maxReceiveCount 5), as `payretry
    sqs setup` makes them."""
    name = f"payments-retry-t{uuid.uuid4().hex[:12]}"
    dlq_url = client.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
    arn = client.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])
    policy = {"deadLetterTargetArn": arn["Attributes"]["QueueArn"], "maxReceiveCount": 5}
    url = client.create_queue(QueueName=name, Attributes={"RedrivePolicy": json.dumps(policy)})[
        "QueueUrl"
    ]
    return SqsQueue(client, name, url, f"{name}-dlq"), SqsQueue(client, f"{name}-dlq", dlq_url)


@pytest.fixture(params=["memory", "sqs"])
def contract_queue(request: pytest.FixtureRequest) -> Iterator[QueueUnderTest]:
    if request.param == "memory":
        clock = ManualClock(T0)
        memory = MemoryQueue("payments-retry-test", clock=clock, max_receive_count=MAX_RECEIVES)
        assert memory.dead_letters is not None

        def down() -> RetryQueue:
            memory.down = True
            return memory

        yield QueueUnderTest(memory, lambda s: clock.advance(seconds=s), memory.dead_letters, down)
        return
    client: SQSClient = request.getfixturevalue("moto_client")
    queue, dlq = fresh_queues(client)

    def closed_port() -> RetryQueue:
        return SqsQueue(sqs_client(f"http://127.0.0.1:{free_port()}"), queue.name, queue.url)

    yield QueueUnderTest(queue, lambda s: time.sleep(s + 0.1), dlq, closed_port)


def message(n: int = 1) -> RetryMessage:
    job = f"{n:032x}"
    return RetryMessage(f"txn-{n}", 1, 0.0, job, f"payretry:{job}:1", T0)


def receive(queue: RetryQueue, *, visibility: int = 30, wait: int = 0) -> list[Received]:
    return queue.receive(max_messages=10, wait_seconds=wait, visibility=visibility)


def receive_all(queue: RetryQueue, count: int, visibility: int = 30) -> list[Received]:
    found: list[Received] = []
    for _ in range(5):  # SQS may hand out fewer than are visible in one receive
        found += receive(queue, visibility=visibility)
        if len(found) >= count:
            break
    return found


def test_a_delay_holds_a_message_back(contract_queue: QueueUnderTest) -> None:
    queue = contract_queue.queue
    ids = queue.send([Outgoing(message(1), 0), Outgoing(message(2), 1)])
    assert all(ids) and len(set(ids)) == 2
    depth = queue.depth()
    assert (depth.visible, depth.delayed, depth.in_flight) == (1, 1, 0)
    [first] = receive(queue)
    assert RetryMessage.parse(first.body) == message(1)
    assert first.message_id == ids[0] and first.receive_count == 1
    assert first.sent_at is not None
    assert receive(queue) == []  # the other is still delayed
    contract_queue.wait(1)
    [second] = receive(queue)
    assert RetryMessage.parse(second.body) == message(2) and second.message_id == ids[1]


def test_a_receive_hides_the_message_and_counts(contract_queue: QueueUnderTest) -> None:
    queue = contract_queue.queue
    queue.send([Outgoing(message(), 0)])
    [first] = receive(queue, visibility=1)
    assert receive(queue) == []  # in flight
    depth = queue.depth()
    assert (depth.visible, depth.in_flight) == (0, 1)
    contract_queue.wait(1)
    [again] = receive(queue, visibility=1)
    assert again.message_id == first.message_id and again.body == first.body
    assert again.receive_count == 2 and again.receipt != first.receipt


def test_hide_extends_a_message_or_gives_it_back(contract_queue: QueueUnderTest) -> None:
    queue = contract_queue.queue
    queue.send([Outgoing(message(), 0)])
    [first] = receive(queue, visibility=1)
    queue.hide([first.receipt], 60)  # still working on it
    contract_queue.wait(1)
    assert receive(queue) == []
    queue.hide([first.receipt], 0)  # given back at once
    [again] = receive(queue)
    assert again.message_id == first.message_id and again.receive_count == 2
    queue.hide(["no-such-receipt"], 0)  # what is gone is passed over


def test_deleted_messages_never_come_back(contract_queue: QueueUnderTest) -> None:
    queue = contract_queue.queue
    queue.send([Outgoing(message(n), 0) for n in range(1, 4)])
    got = receive_all(queue, 3, visibility=1)
    assert len(got) == 3
    queue.delete(got[0].receipt)
    queue.delete(got[0].receipt)  # deleting again is no error
    assert queue.delete_many([got[1].receipt, got[2].receipt]) == 0
    contract_queue.wait(1)
    assert receive(queue) == []
    depth = queue.depth()
    assert (depth.visible, depth.in_flight, depth.delayed) == (0, 0, 0)


def test_delete_many_counts_what_the_queue_refused(contract_queue: QueueUnderTest) -> None:
    queue = contract_queue.queue
    queue.send([Outgoing(message(n), 0) for n in range(1, 13)])
    got = receive_all(queue, 12)
    assert len(got) == 12
    assert queue.delete_many([r.receipt for r in got] + ["no-such-receipt"]) == 1
    assert queue.depth().in_flight == 0


def test_a_message_received_too_often_goes_to_the_dead_letter_queue(
    contract_queue: QueueUnderTest,
) -> None:
    queue = contract_queue.queue
    [sent] = queue.send([Outgoing(message(), 0)])
    counts = [r.receive_count for _ in range(MAX_RECEIVES) for r in receive(queue, visibility=0)]
    assert counts == list(range(1, MAX_RECEIVES + 1))
    assert receive(queue, visibility=0) == []  # moved on this receive
    depth = queue.depth()
    assert depth.visible == 0 and depth.dead == 1
    assert depth.dead_letter_queue == f"{queue.name}-dlq"
    [dead] = receive(contract_queue.dead_letters)
    assert dead.message_id == sent and RetryMessage.parse(dead.body) == message()


def test_a_receive_returns_at_most_ten(contract_queue: QueueUnderTest) -> None:
    queue = contract_queue.queue
    queue.send([Outgoing(message(n), 0) for n in range(1, 13)])
    got = queue.receive(max_messages=50, wait_seconds=0, visibility=30)
    assert 1 <= len(got) <= 10


def test_a_long_poll_returns_when_a_message_arrives(contract_queue: QueueUnderTest) -> None:
    queue = contract_queue.queue
    found: list[Received] = []
    poll = threading.Thread(target=lambda: found.extend(receive(queue, wait=5)))
    started = time.monotonic()
    poll.start()
    time.sleep(0.2)
    queue.send([Outgoing(message(), 0)])
    poll.join(10)
    assert [RetryMessage.parse(r.body) for r in found] == [message()]
    assert time.monotonic() - started < 4.5  # woken by the message, not the end of the wait


def test_a_delay_above_fifteen_minutes_is_refused(contract_queue: QueueUnderTest) -> None:
    queue = contract_queue.queue
    for delay in (901, -1):
        with pytest.raises(ValueError, match="DelaySeconds"):
            queue.send([Outgoing(message(), delay)])
    assert queue.depth().delayed == 0 and receive(queue) == []


def test_a_queue_that_does_not_answer_raises_queue_error(contract_queue: QueueUnderTest) -> None:
    away = contract_queue.unreachable()
    with pytest.raises(QueueError):
        away.send([Outgoing(message(), 0)])
    with pytest.raises(QueueError):
        receive(away)
    with pytest.raises(QueueError):
        away.depth()
