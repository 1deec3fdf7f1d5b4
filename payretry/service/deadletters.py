"""The dead-letter queue, reviewed by hand: list what is there with its job, and send chosen
messages back to the queue (receive, send, delete), message by message."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from payretry.domain.dispatch import BadMessage, Received, RetryMessage, RetryQueue
from payretry.domain.durations import iso
from payretry.domain.models import Job
from payretry.domain.ports import Store
from payretry.errors import NotFound

HOLD_SECONDS = 30  # how long a listed message stays hidden if the listing dies midway


class SendsBodies(Protocol):
    name: str

    def send_body(self, body: str) -> str: ...


@dataclass(frozen=True, slots=True)
class DeadLetter:
    message_id: str
    receive_count: int
    sent_at: datetime | None
    body: str
    message: RetryMessage | None
    problem: str | None  # why the body is not a retry message
    job: Job | None

    def as_dict(self) -> dict[str, Any]:
        job = self.job
        return {
            "message_id": self.message_id,
            "receive_count": self.receive_count,
            "sent_at": iso(self.sent_at),
            "body": self.body,
            "problem": self.problem,
            "job_id": self.message.job_id if self.message else None,
            "transaction_id": self.message.payment_session_id if self.message else None,
            "attempt": self.message.attempt_number if self.message else None,
            "job": None
            if job is None
            else {
                "job_id": job.id,
                "transaction_id": job.transaction_id,
                "state": job.state.value,
                "attempt_count": job.attempt_count,
                "max_attempts": job.max_attempts,
                "next_retry_at": iso(job.next_retry_at),
                "reason": job.reason,
            },
        }


def _receive_all(dlq: RetryQueue, limit: int) -> list[Received]:
    """Every message once (each hidden meanwhile), up to `limit`."""
    seen: dict[str, Received] = {}
    while len(seen) < limit:
        batch = dlq.receive(
            max_messages=min(10, limit - len(seen)), wait_seconds=1, visibility=HOLD_SECONDS
        )
        fresh = [r for r in batch if r.message_id not in seen]
        seen.update((r.message_id, r) for r in batch)
        if not fresh:
            break
    return list(seen.values())


def _release(dlq: RetryQueue, letters: Sequence[Received]) -> None:
    if letters:
        dlq.hide([r.receipt for r in letters], 0)


def _describe(received: Received, store: Store) -> DeadLetter:
    message: RetryMessage | None = None
    problem: str | None = None
    job: Job | None = None
    try:
        message = RetryMessage.parse(received.body)
    except BadMessage as exc:
        problem = f"unreadable: {exc}"
    if message is not None:
        job = store.get(message.job_id, with_attempts=False)
        if job is None:
            problem = f"no job {message.job_id} in this database"
    return DeadLetter(
        received.message_id,
        received.receive_count,
        received.sent_at,
        received.body,
        message,
        problem,
        job,
    )


def list_dead(dlq: RetryQueue, store: Store, *, limit: int = 1000) -> list[DeadLetter]:
    received = _receive_all(dlq, limit)
    try:
        return [_describe(r, store) for r in received]
    finally:
        _release(dlq, received)


def redrive(
    dlq: RetryQueue,
    queue: SendsBodies,
    store: Store,
    message_ids: Sequence[str] | None,
    *,
    limit: int = 10_000,
) -> list[tuple[DeadLetter, str]]:
    """Send the chosen dead messages (all when `message_ids` is None) back to `queue`, each
    deleted from the dead-letter queue once sent. Returns each with its new message id."""
    received = _receive_all(dlq, limit)
    wanted = None if message_ids is None else set(message_ids)
    chosen = [r for r in received if wanted is None or r.message_id in wanted]
    rest = [r for r in received if r not in chosen]
    moved: list[tuple[DeadLetter, str]] = []
    try:
        if wanted is not None:
            missing = wanted - {r.message_id for r in chosen}
            if missing:
                raise NotFound(f"no message {', '.join(sorted(missing))} in {dlq.name}")
        for index, letter in enumerate(chosen):
            try:
                new_id = queue.send_body(letter.body)
                dlq.delete(letter.receipt)
            except BaseException:
                rest.extend(chosen[index:])
                raise
            moved.append((_describe(letter, store), new_id))
    finally:
        _release(dlq, rest)
    return moved
