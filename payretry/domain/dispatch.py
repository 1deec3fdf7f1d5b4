"""Dispatch through a message queue (SQS): the retry message, the longest delay a queue allows,
and the ports a dispatcher and a worker drive. Pure: no boto3, no clock.

A message names one attempt of one job. The database stays the record of truth: a worker acts on
a message only while its job is scheduled for exactly that attempt, so a duplicate, a stale or a
late message changes nothing.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from payretry.domain.durations import iso, parse_time
from payretry.domain.models import attempt_key
from payretry.errors import InvalidInput

MAX_DELAY_SECONDS = 900  # SQS holds a message at most 15 minutes before delivering it
HORIZON = timedelta(seconds=MAX_DELAY_SECONDS)


def delay_seconds(due: datetime, now: datetime) -> int:
    """Whole seconds from `now` until `due`, rounded up, never below 0 nor above 900."""
    seconds = math.ceil((due - now).total_seconds())
    return max(0, min(MAX_DELAY_SECONDS, seconds))


@dataclass(frozen=True, slots=True)
class Dispatch:
    """A job marked as dispatched for its next attempt: what its message must say."""

    seq: int
    job_id: str
    transaction_id: str
    attempt_number: int
    next_retry_at: datetime
    scheduled_at: datetime  # when the retry was decided (the job's last change)

    def message(self) -> RetryMessage:
        minutes = max((self.next_retry_at - self.scheduled_at).total_seconds(), 0.0) / 60
        return RetryMessage(
            payment_session_id=self.transaction_id,
            attempt_number=self.attempt_number,
            delay_minutes=round(minutes, 2),
            job_id=self.job_id,
            idempotency_key=attempt_key(self.job_id, self.attempt_number),
            due_at=self.next_retry_at,
        )


class BadMessage(InvalidInput):
    """The message is not a payretry retry message."""


@dataclass(frozen=True, slots=True)
class RetryMessage:
    """The body of a queue message. The first three fields are the seed's payload."""

    payment_session_id: str  # the transaction id
    attempt_number: int
    delay_minutes: float  # the policy's wait before this attempt
    job_id: str
    idempotency_key: str
    due_at: datetime | None = None

    VERSION = 1

    def body(self) -> str:
        return json.dumps(
            {
                "paymentSessionId": self.payment_session_id,
                "attemptNumber": self.attempt_number,
                "delayMinutes": self.delay_minutes,
                "jobId": self.job_id,
                "idempotencyKey": self.idempotency_key,
                "dueAt": iso(self.due_at),
                "version": self.VERSION,
            },
            separators=(",", ":"),
        )

    @classmethod
    def parse(cls, body: str) -> RetryMessage:
        """The message in `body`, or BadMessage saying what is wrong with it."""
        try:
            data = json.loads(body)
        except ValueError:
            raise BadMessage("not JSON") from None
        if not isinstance(data, dict):
            raise BadMessage("not a JSON object")
        try:
            session, number, job_id, key = (
                data["paymentSessionId"],
                data["attemptNumber"],
                data["jobId"],
                data["idempotencyKey"],
            )
        except KeyError as exc:
            raise BadMessage(f"no {exc.args[0]}") from None
        if not (isinstance(session, str) and isinstance(job_id, str) and isinstance(key, str)):
            raise BadMessage("paymentSessionId, jobId and idempotencyKey must be strings")
        if isinstance(number, bool) or not isinstance(number, int) or number < 1:
            raise BadMessage("attemptNumber must be a whole number from 1")
        if key != attempt_key(job_id, number):
            raise BadMessage(f"idempotencyKey {key!r} does not match job {job_id} attempt {number}")
        delay = data.get("delayMinutes", 0)
        if isinstance(delay, bool) or not isinstance(delay, int | float):
            raise BadMessage("delayMinutes must be a number")
        due = data.get("dueAt")
        try:
            due_at = parse_time(due, field="dueAt") if isinstance(due, str) else None
        except InvalidInput as exc:
            raise BadMessage(str(exc)) from None
        return cls(session, number, float(delay), job_id, key, due_at)


@dataclass(frozen=True, slots=True)
class Received:
    """A message as a receive returned it."""

    message_id: str
    receipt: str
    body: str
    receive_count: int
    sent_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Outgoing:
    message: RetryMessage
    delay_seconds: int


@dataclass(frozen=True, slots=True)
class QueueDepth:
    queue: str
    visible: int
    in_flight: int
    delayed: int
    dead_letter_queue: str | None
    dead: int | None

    def as_dict(self) -> dict[str, object]:
        return {
            "queue": self.queue,
            "visible": self.visible,
            "in_flight": self.in_flight,
            "delayed": self.delayed,
            "dead_letter_queue": self.dead_letter_queue,
            "dead": self.dead,
        }


class RetryQueue(Protocol):
    """The queue a dispatcher sends to and a worker receives from."""

    name: str

    def send(self, outgoing: Sequence[Outgoing]) -> list[str | None]:
        """Send each message with its delay (0 to 900 s); the message id of each, or None
        where that send failed."""
        ...

    def receive(
        self, *, max_messages: int, wait_seconds: int, visibility: int
    ) -> list[Received]: ...

    def delete(self, receipt: str) -> None: ...

    def delete_many(self, receipts: Sequence[str]) -> int:
        """Delete in batches; returns how many the queue refused."""
        ...

    def hide(self, receipts: Sequence[str], seconds: int) -> None:
        """Set the visibility timeout of received messages (0 makes them visible at once)."""
        ...

    def depth(self) -> QueueDepth: ...


class DispatchStore(Protocol):
    """What the dispatcher needs of the store, beyond the Store port."""

    def mark_dispatch(
        self,
        now: datetime,
        horizon: datetime,
        limit: int,
        *,
        job_ids: Sequence[str] | None = None,
    ) -> list[Dispatch]:
        """In one transaction, take up to `limit` scheduled jobs due by `horizon` that have no
        message for their next attempt and record the intent to send one."""
        ...

    def confirm_dispatch(self, sent: Sequence[tuple[Dispatch, str]]) -> int:
        """Record the message id of each confirmed send."""
        ...

    def unsent_dispatches(self, before: datetime, now: datetime, limit: int) -> list[Dispatch]:
        """Intents recorded before `before` whose send was never confirmed and whose job still
        waits for that attempt (re-marked at `now`); the rest are settled."""
        ...

    def lost_dispatches(self, before: datetime, now: datetime, limit: int) -> list[Dispatch]:
        """Scheduled jobs whose confirmed message has not been acted on: due and sent before
        `before`, still waiting for that attempt. Re-marked at `now` (unconfirmed), so the
        next sweep waits again before sending another."""
        ...

    def undispatch(self, job_id: str, attempt_number: int) -> bool:
        """Forget a dispatch (its message was dropped early): the job is sent again when due."""
        ...
