"""The SQS adapter: the one home of boto3.

Queues `payments-retry-${ENV}` and its dead-letter queue `payments-retry-${ENV}-dlq`, reached
with the standard AWS configuration chain (environment, profile, instance role) plus an optional
endpoint URL for SQS-compatible servers. Every boto3 or botocore error becomes a QueueError.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from payretry.domain.dispatch import MAX_DELAY_SECONDS, Outgoing, QueueDepth, Received
from payretry.errors import QueueError

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import (
        ChangeMessageVisibilityBatchRequestEntryTypeDef,
        DeleteMessageBatchRequestEntryTypeDef,
        SendMessageBatchRequestEntryTypeDef,
    )

_MISSING = ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist")
_BATCH = 10  # SQS's most entries per batch call
_DEPTH = (
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
)


@dataclass(frozen=True, slots=True)
class SqsSettings:
    env: str = "dev"
    endpoint_url: str | None = None
    region: str | None = None
    max_receive_count: int = 5
    message_retention: timedelta = timedelta(days=4)
    dlq_retention: timedelta = timedelta(days=14)
    visibility_timeout: timedelta = timedelta(minutes=1)

    @property
    def queue_name(self) -> str:
        return f"payments-retry-{self.env}"

    @property
    def dlq_name(self) -> str:
        return f"{self.queue_name}-dlq"


@contextmanager
def _errors(what: str) -> Iterator[None]:
    try:
        yield
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code, message = error.get("Code", "?"), error.get("Message", str(exc))
        if code in _MISSING:
            raise QueueError(f"{what}: no such queue; run `payretry sqs setup`") from None
        raise QueueError(f"{what}: {code}: {message}") from None
    except BotoCoreError as exc:  # no credentials, no region, endpoint unreachable, ...
        raise QueueError(f"{what}: {exc}") from None


def make_client(settings: SqsSettings) -> SQSClient:
    with _errors("SQS client"):
        session = boto3.session.Session()
        return session.client(
            "sqs",
            endpoint_url=settings.endpoint_url or None,
            region_name=settings.region or None,
            # Long polls wait up to 20 s: the read timeout must outlast them.
            config=Config(
                connect_timeout=5,
                read_timeout=40,
                retries={"mode": "standard", "max_attempts": 4},
                max_pool_connections=64,
            ),
        )


def _queue_url(client: SQSClient, name: str) -> str:
    with _errors(f"queue {name}"):
        return client.get_queue_url(QueueName=name)["QueueUrl"]


def _sent_at(attributes: dict[str, str]) -> datetime | None:
    stamp = attributes.get("SentTimestamp")
    return datetime.fromtimestamp(int(stamp) / 1000, UTC) if stamp else None


class SqsQueue:
    """One SQS queue: send, receive, delete, hide (change visibility), depth."""

    def __init__(self, client: SQSClient, name: str, url: str, dlq_name: str | None = None):
        self.client = client
        self.name = name
        self.url = url
        self.dlq_name = dlq_name

    @classmethod
    def open(cls, settings: SqsSettings, *, dead_letters: bool = False) -> SqsQueue:
        """The main queue (or its dead-letter queue), which must exist (`payretry sqs setup`)."""
        client = make_client(settings)
        if dead_letters:
            return cls(client, settings.dlq_name, _queue_url(client, settings.dlq_name))
        url = _queue_url(client, settings.queue_name)
        return cls(client, settings.queue_name, url, settings.dlq_name)

    def send(self, outgoing: Sequence[Outgoing]) -> list[str | None]:
        ids: list[str | None] = []
        for start in range(0, len(outgoing), _BATCH):
            chunk = outgoing[start : start + _BATCH]
            entries: list[SendMessageBatchRequestEntryTypeDef] = []
            for i, item in enumerate(chunk):
                if not 0 <= item.delay_seconds <= MAX_DELAY_SECONDS:
                    raise ValueError(f"DelaySeconds {item.delay_seconds} outside 0..900")
                entries.append(
                    {
                        "Id": str(i),
                        "MessageBody": item.message.body(),
                        "DelaySeconds": item.delay_seconds,
                    }
                )
            with _errors(f"send to {self.name}"):
                answer = self.client.send_message_batch(QueueUrl=self.url, Entries=entries)
            found = {entry["Id"]: entry["MessageId"] for entry in answer.get("Successful", [])}
            ids.extend(found.get(str(i)) for i in range(len(chunk)))
        return ids

    def send_body(self, body: str) -> str:
        """One raw body, at once (the dead-letter redrive sends what it received)."""
        with _errors(f"send to {self.name}"):
            return self.client.send_message(QueueUrl=self.url, MessageBody=body)["MessageId"]

    def receive(self, *, max_messages: int, wait_seconds: int, visibility: int) -> list[Received]:
        with _errors(f"receive from {self.name}"):
            answer = self.client.receive_message(
                QueueUrl=self.url,
                MaxNumberOfMessages=max(1, min(_BATCH, max_messages)),
                WaitTimeSeconds=max(0, min(20, wait_seconds)),
                VisibilityTimeout=visibility,
                MessageSystemAttributeNames=["ApproximateReceiveCount", "SentTimestamp"],
            )
        received = []
        for message in answer.get("Messages", []):
            attributes = {str(k): v for k, v in message.get("Attributes", {}).items()}
            received.append(
                Received(
                    message_id=message.get("MessageId", ""),
                    receipt=message.get("ReceiptHandle", ""),
                    body=message.get("Body", ""),
                    receive_count=int(attributes.get("ApproximateReceiveCount", "1")),
                    sent_at=_sent_at(attributes),
                )
            )
        return received

    def delete(self, receipt: str) -> None:
        with _errors(f"delete from {self.name}"):
            self.client.delete_message(QueueUrl=self.url, ReceiptHandle=receipt)

    def delete_many(self, receipts: Sequence[str]) -> int:
        """Delete in batches of ten; returns how many SQS refused (they come back)."""
        refused = 0
        for start in range(0, len(receipts), _BATCH):
            entries: list[DeleteMessageBatchRequestEntryTypeDef] = [
                {"Id": str(i), "ReceiptHandle": receipt}
                for i, receipt in enumerate(receipts[start : start + _BATCH])
            ]
            with _errors(f"delete from {self.name}"):
                answer = self.client.delete_message_batch(QueueUrl=self.url, Entries=entries)
            refused += len(answer.get("Failed", []))
        return refused

    def hide(self, receipts: Sequence[str], seconds: int) -> None:
        seconds = max(0, min(43_200, seconds))
        for start in range(0, len(receipts), _BATCH):
            entries: list[ChangeMessageVisibilityBatchRequestEntryTypeDef] = [
                {"Id": str(i), "ReceiptHandle": receipt, "VisibilityTimeout": seconds}
                for i, receipt in enumerate(receipts[start : start + _BATCH])
            ]
            with _errors(f"change visibility in {self.name}"):
                self.client.change_message_visibility_batch(QueueUrl=self.url, Entries=entries)

    def _counts(self, url: str, name: str) -> dict[str, int]:
        with _errors(f"attributes of {name}"):
            found = self.client.get_queue_attributes(
                QueueUrl=url,
                AttributeNames=list(_DEPTH),  # type: ignore[arg-type]
            ).get("Attributes", {})
        attributes = {str(k): v for k, v in found.items()}
        return {key: int(attributes.get(key, "0")) for key in _DEPTH}

    def depth(self) -> QueueDepth:
        counts = self._counts(self.url, self.name)
        dead: int | None = None
        if self.dlq_name is not None:
            try:
                dlq_url = _queue_url(self.client, self.dlq_name)
                dead = self._counts(dlq_url, self.dlq_name)["ApproximateNumberOfMessages"]
            except QueueError:
                dead = None
        return QueueDepth(
            queue=self.name,
            visible=counts["ApproximateNumberOfMessages"],
            in_flight=counts["ApproximateNumberOfMessagesNotVisible"],
            delayed=counts["ApproximateNumberOfMessagesDelayed"],
            dead_letter_queue=self.dlq_name,
            dead=dead,
        )

    def close(self) -> None:
        self.client.close()


@dataclass(frozen=True, slots=True)
class SetupResult:
    queue: str
    queue_url: str
    queue_created: bool
    dlq: str
    dlq_url: str
    dlq_created: bool
    redrive_policy: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {
            "queue": self.queue,
            "queue_url": self.queue_url,
            "queue_created": self.queue_created,
            "dead_letter_queue": self.dlq,
            "dead_letter_queue_url": self.dlq_url,
            "dead_letter_queue_created": self.dlq_created,
            "redrive_policy": self.redrive_policy,
        }


def _existing(client: SQSClient, name: str) -> str | None:
    try:
        return client.get_queue_url(QueueName=name)["QueueUrl"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in _MISSING:
            return None
        raise


def setup_queues(settings: SqsSettings) -> SetupResult:
    """Create the dead-letter queue, then the queue with its redrive policy. A queue that exists
    already is used as it is (its attributes are not changed)."""
    if settings.dlq_retention <= settings.message_retention:
        raise QueueError(
            "the dead-letter queue must keep messages longer than the queue does: "
            "raise [sqs] dlq_retention above message_retention"
        )
    client = make_client(settings)
    with _errors("sqs setup"):
        dlq_url = _existing(client, settings.dlq_name)
        dlq_created = dlq_url is None
        if dlq_url is None:
            dlq_url = client.create_queue(
                QueueName=settings.dlq_name,
                Attributes={
                    "MessageRetentionPeriod": str(int(settings.dlq_retention.total_seconds()))
                },
            )["QueueUrl"]
        dlq_arn = client.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        queue_url = _existing(client, settings.queue_name)
        queue_created = queue_url is None
        policy: dict[str, Any] = {
            "deadLetterTargetArn": dlq_arn,
            "maxReceiveCount": settings.max_receive_count,
        }
        if queue_url is None:
            queue_url = client.create_queue(
                QueueName=settings.queue_name,
                Attributes={
                    "MessageRetentionPeriod": str(int(settings.message_retention.total_seconds())),
                    "VisibilityTimeout": str(int(settings.visibility_timeout.total_seconds())),
                    "RedrivePolicy": json.dumps(policy),
                },
            )["QueueUrl"]
        else:
            found = client.get_queue_attributes(
                QueueUrl=queue_url, AttributeNames=["RedrivePolicy"]
            ).get("Attributes", {})
            policy = json.loads(found["RedrivePolicy"]) if "RedrivePolicy" in found else {}
    client.close()
    return SetupResult(
        settings.queue_name,
        queue_url,
        queue_created,
        settings.dlq_name,
        dlq_url,
        dlq_created,
        policy,
    )
