"""The SQS suite runs against the moto server: real HTTP on a loopback port, started and stopped
here, with boto3 (payretry's and the tests' own client) pointed at it. Each test gets queues of
its own (a fresh ${ENV}), so one server serves the whole session."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import pytest

from payretry.clock import utcnow
from payretry.dispatch.sqs import SqsQueue, SqsSettings, setup_queues
from payretry.domain.policy import PolicyRow, RetryPolicy
from payretry.processors.simulated import SimulatedProcessor
from payretry.service.dispatcher import Dispatcher
from payretry.service.runner import Runner
from payretry.service.worker import Worker
from payretry.store.sql import SqlStore

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

ROOT = Path(__file__).resolve().parents[2]
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """The moto server, on a free loopback port, in a process of its own (moto_process.py)."""
    server = subprocess.Popen(
        [sys.executable, "-m", "tests.sqs.moto_process"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=ROOT,
    )
    assert server.stdout is not None and server.stdin is not None
    try:
        endpoint = server.stdout.readline().strip()
        assert endpoint.startswith("http://127.0.0.1:"), "the moto server did not start"
        yield endpoint
    finally:
        server.stdin.close()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)
        server.stdout.close()


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Dummy credentials and a region; nothing from the developer's own AWS set-up."""
    for name in ("AWS_PROFILE", "AWS_REGION", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    for name, value in AWS_ENV.items():
        monkeypatch.setenv(name, value)


@dataclass
class Sqs:
    """One test's queues on the moto server, and a client of the test's own to look at them."""

    endpoint: str
    env: str
    client: SQSClient
    sent_delays: list[int] = field(default_factory=list)

    @property
    def settings(self) -> SqsSettings:
        return SqsSettings(env=self.env, endpoint_url=self.endpoint, max_receive_count=5)

    @property
    def queue_url(self) -> str:
        return self.client.get_queue_url(QueueName=f"payments-retry-{self.env}")["QueueUrl"]

    @property
    def dlq_url(self) -> str:
        return self.client.get_queue_url(QueueName=f"payments-retry-{self.env}-dlq")["QueueUrl"]

    def variables(self) -> dict[str, str]:
        """For `payretry` in a subprocess or in-process: sqs mode on these queues."""
        return {
            **AWS_ENV,
            "AWS_CONFIG_FILE": "/nonexistent",
            "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
            "PAYRETRY_DISPATCH_MODE": "sqs",
            "PAYRETRY_ENV": self.env,
            "PAYRETRY_SQS_ENDPOINT_URL": self.endpoint,
        }

    def queue(self) -> SqsQueue:
        """payretry's own adapter; every delay it asks for is recorded in `sent_delays`."""
        queue = SqsQueue.open(self.settings)
        queue.client.meta.events.register(
            "provide-client-params.sqs.SendMessageBatch", self._record
        )
        queue.client.meta.events.register("provide-client-params.sqs.SendMessage", self._record)
        return queue

    def _record(self, params: dict[str, Any], **_: Any) -> None:
        for entry in params.get("Entries", [params]):
            self.sent_delays.append(int(entry.get("DelaySeconds", 0)))

    def depth(self, url: str | None = None) -> dict[str, int]:
        names = [
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ]
        found = self.client.get_queue_attributes(
            QueueUrl=url or self.queue_url,
            AttributeNames=names,  # type: ignore[arg-type]
        )["Attributes"]
        values = {str(k): int(v) for k, v in found.items()}
        return {
            "visible": values["ApproximateNumberOfMessages"],
            "in_flight": values["ApproximateNumberOfMessagesNotVisible"],
            "delayed": values["ApproximateNumberOfMessagesDelayed"],
        }

    def bodies(self, url: str | None = None, wait: int = 0, hide: int = 30) -> list[dict[str, Any]]:
        """Receive what is visible now (then hidden `hide` seconds), bodies parsed."""
        answer = self.client.receive_message(
            QueueUrl=url or self.queue_url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=wait,
            VisibilityTimeout=hide,
        )
        return [json.loads(m["Body"]) for m in answer.get("Messages", [])]


@pytest.fixture
def sqs(moto_endpoint: str) -> Iterator[Sqs]:
    client = boto3.session.Session().client(
        "sqs", endpoint_url=moto_endpoint, region_name="us-east-1"
    )
    found = Sqs(moto_endpoint, f"t{uuid.uuid4().hex[:12]}", client)
    setup_queues(found.settings)
    yield found
    # No test may ever ask SQS for a delay above its 15 minutes.
    assert all(0 <= d <= 900 for d in found.sent_delays), found.sent_delays
    client.close()


QUICK = PolicyRow("quick_error", True, 3, (timedelta(seconds=2), timedelta(seconds=1)), "tests")


def policy() -> RetryPolicy:
    """The standard table plus `quick_error`, retried 2 s, then 1 s later."""
    return RetryPolicy.standard().with_rows([QUICK])


def build_worker(
    store: SqlStore,
    queue: SqsQueue,
    processor: SimulatedProcessor,
    *,
    lease_for: timedelta = timedelta(minutes=5),
    concurrency: int = 1,
    visibility: timedelta = timedelta(seconds=30),
    failure_visibility: timedelta = timedelta(0),
) -> Worker:
    stop = threading.Event()
    runner = Runner(store, policy(), processor, clock=utcnow, lease_for=lease_for, stop=stop)
    return Worker(
        store,
        runner,
        queue,
        Dispatcher(store, queue, clock=utcnow),
        clock=utcnow,
        concurrency=concurrency,
        wait_time=timedelta(seconds=1),
        visibility=visibility,
        failure_visibility=failure_visibility,
        grace=timedelta(seconds=10),
        stop=stop,
    )


class Running:
    """A worker on a thread of its own, stopped (and joined) on exit."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.thread = threading.Thread(target=worker.run, name="test-worker", daemon=True)

    def __enter__(self) -> Worker:
        self.thread.start()
        return self.worker

    def __exit__(self, *exc: object) -> None:
        self.worker.stop.set()
        self.thread.join(timeout=30)
        assert not self.thread.is_alive(), "the worker did not stop"
