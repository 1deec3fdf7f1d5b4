"""MemoryQueue: the retry queue in memory, for tests, with SQS's rules (tests/contract runs the
same suite on it and on SQS through the moto server):

- a message sent with a delay (0 to 900 s) is not received before the delay has passed;
- a receive hides each message it returns for the visibility timeout and counts the receive;
  `hide` sets the timeout again (0: visible at once), `delete` removes it for good;
- a message received `max_receive_count` times moves to the dead-letter queue on the next
  receive (`dead_letters`, a MemoryQueue too);
- `depth()` counts the visible, in-flight and delayed messages, and the dead ones.

Time is the `clock` passed in (a ManualClock in tests): nothing waits for a delay or a timeout
to pass, the test moves the clock. A receive that finds nothing waits up to `wait_seconds` in
real time (a long poll) for a message to become receivable, looking again every 20 ms; `close()`
ends it at once. `down = True` makes every call raise QueueError (a queue that does not
answer); `refusing = True` refuses every message sent (its id comes back None, as a batch send
reports the entries SQS refused).
"""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from payretry.clock import utcnow
from payretry.domain.dispatch import MAX_DELAY_SECONDS, Outgoing, QueueDepth, Received
from payretry.errors import QueueError

_BATCH = 10  # SQS's most messages per receive
_MAX_VISIBILITY = 43_200  # 12 hours
_POLL = 0.02


@dataclass
class _Message:
    id: str
    body: str
    sent_at: datetime
    visible_at: datetime  # the end of its delay, then of each visibility timeout
    receive_count: int = 0
    receipts: list[str] = field(default_factory=list)  # every receipt it was handed

    def delayed(self, now: datetime) -> bool:
        return self.receive_count == 0 and self.visible_at > now

    def in_flight(self, now: datetime) -> bool:
        return self.receive_count > 0 and self.visible_at > now


class MemoryQueue:
    """One queue: send, receive, hide, delete, depth; and its dead-letter queue."""

    def __init__(
        self,
        name: str = "payments-retry-memory",
        *,
        clock: Callable[[], datetime] = utcnow,
        max_receive_count: int | None = 5,
        dead_letters: MemoryQueue | None = None,
    ) -> None:
        self.name = name
        self.clock = clock
        self.max_receive_count = max_receive_count
        if dead_letters is None and max_receive_count is not None:
            dead_letters = MemoryQueue(f"{name}-dlq", clock=clock, max_receive_count=None)
        self.dead_letters = dead_letters
        self.dlq_name = dead_letters.name if dead_letters is not None else None
        self.down = False
        self.refusing = False
        self._messages: dict[str, _Message] = {}  # by id, in send order
        self._by_receipt: dict[str, str] = {}  # receipt -> message id
        self._deleted: set[str] = set()  # receipts of deleted messages
        self._lock = threading.Condition()
        self._receipts = itertools.count(1)
        self._closed = False

    def _check(self) -> None:
        if self.down:
            raise QueueError(f"queue {self.name} does not answer (down)")

    # -- sending -------------------------------------------------------------------------------

    def send(self, outgoing: Sequence[Outgoing]) -> list[str | None]:
        """Send each message with its delay (0 to 900 s); its id, or None where it failed."""
        for item in outgoing:
            if not 0 <= item.delay_seconds <= MAX_DELAY_SECONDS:
                raise ValueError(f"DelaySeconds {item.delay_seconds} outside 0..900")
        with self._lock:
            self._check()
            if self.refusing:
                return [None for _ in outgoing]
            ids: list[str | None] = [
                self._add(item.message.body(), item.delay_seconds) for item in outgoing
            ]
            self._lock.notify_all()
            return ids

    def send_body(self, body: str) -> str:
        """One raw body, at once (the dead-letter redrive sends what it received)."""
        with self._lock:
            self._check()
            if self.refusing:
                raise QueueError(f"send to {self.name} refused")
            found = self._add(body, 0)
            self._lock.notify_all()
            return found

    def _add(self, body: str, delay: int) -> str:
        now = self.clock()
        message = _Message(uuid.uuid4().hex, body, now, now + timedelta(seconds=delay))
        self._messages[message.id] = message
        return message.id

    # -- receiving -----------------------------------------------------------------------------

    def receive(self, *, max_messages: int, wait_seconds: int, visibility: int) -> list[Received]:
        deadline = time.monotonic() + max(0, min(20, wait_seconds))
        with self._lock:
            while True:
                self._check()
                found = self._take(max(1, min(_BATCH, max_messages)), visibility)
                left = deadline - time.monotonic()
                if found or left <= 0 or self._closed:
                    return found
                self._lock.wait(min(_POLL, left))

    def _take(self, count: int, visibility: int) -> list[Received]:
        now = self.clock()
        hidden_until = now + timedelta(seconds=max(0, min(_MAX_VISIBILITY, visibility)))
        found: list[Received] = []
        for message in list(self._messages.values()):
            if len(found) >= count:
                break
            if message.visible_at > now:
                continue
            if (
                self.dead_letters is not None
                and self.max_receive_count is not None
                and message.receive_count >= self.max_receive_count
            ):
                self._to_dead_letters(message)
                continue
            receipt = f"{message.id}:{next(self._receipts)}"
            message.receive_count += 1
            message.visible_at = hidden_until
            message.receipts.append(receipt)
            self._by_receipt[receipt] = message.id
            found.append(
                Received(message.id, receipt, message.body, message.receive_count, message.sent_at)
            )
        return found

    def _to_dead_letters(self, message: _Message) -> None:
        assert self.dead_letters is not None
        self._forget(message)
        dlq = self.dead_letters
        with dlq._lock:
            moved = _Message(
                message.id, message.body, message.sent_at, self.clock(), message.receive_count
            )
            dlq._messages[moved.id] = moved
            dlq._lock.notify_all()

    # -- acknowledging -------------------------------------------------------------------------

    def _forget(self, message: _Message) -> None:
        del self._messages[message.id]
        for receipt in message.receipts:
            self._by_receipt.pop(receipt, None)
            self._deleted.add(receipt)

    def _message(self, receipt: str) -> _Message | None:
        found = self._by_receipt.get(receipt)
        return None if found is None else self._messages.get(found)

    def delete(self, receipt: str) -> None:
        with self._lock:
            self._check()
            if not self._delete(receipt):
                raise QueueError(f"delete from {self.name}: ReceiptHandleIsInvalid")

    def _delete(self, receipt: str) -> bool:
        if receipt in self._deleted:  # deleted already: SQS accepts it again
            return True
        message = self._message(receipt)
        if message is None:
            return False
        self._forget(message)
        return True

    def delete_many(self, receipts: Sequence[str]) -> int:
        """Delete each; returns how many the queue refused (receipts it never handed out)."""
        with self._lock:
            self._check()
            return sum(1 for receipt in receipts if not self._delete(receipt))

    def hide(self, receipts: Sequence[str], seconds: int) -> None:
        """Set the visibility timeout of received messages (0 makes them visible at once);
        receipts of messages gone are passed over, as SQS's batch call reports them apart."""
        with self._lock:
            self._check()
            until = self.clock() + timedelta(seconds=max(0, min(_MAX_VISIBILITY, seconds)))
            for receipt in receipts:
                message = self._message(receipt)
                if message is not None:
                    message.visible_at = until
            self._lock.notify_all()

    # -- looking -------------------------------------------------------------------------------

    def depth(self) -> QueueDepth:
        with self._lock:
            self._check()
            now = self.clock()
            messages = list(self._messages.values())
            delayed = sum(1 for m in messages if m.delayed(now))
            in_flight = sum(1 for m in messages if m.in_flight(now))
        dead = None
        if self.dead_letters is not None:
            dead = self.dead_letters.depth().visible
        return QueueDepth(
            queue=self.name,
            visible=len(messages) - delayed - in_flight,
            in_flight=in_flight,
            delayed=delayed,
            dead_letter_queue=self.dlq_name,
            dead=dead,
        )

    def bodies(self) -> list[str]:
        """Every message still in the queue, visible or not, in send order (for assertions)."""
        with self._lock:
            return [m.body for m in self._messages.values()]

    def close(self) -> None:
        """End any long poll now (it returns what it has); later receives do not wait."""
        with self._lock:
            self._closed = True
            self._lock.notify_all()
