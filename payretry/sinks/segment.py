"""Segment sink: analytics `track` calls in Segment's format, through the official library
(segment-analytics-python), to a configurable host.

payments.retry.initiated (an attempt starts), payments.retry.completed (an attempt ends;
`success` true or false), payments.retry.abandoned (the payment window closed). The library's
own `track()` builds each message (validation, timestamp, `messageId` = our event id, so Segment
drops duplicates) and its own `post()` sends a batch to `<host>/v1/batch`, synchronously: a
failure is known at once and the events stay in the outbox. (The library's background queue
would report a failure only through a callback, after dropping the batch.)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from payretry.domain.events import ANALYTICS, Event, EventType
from payretry.domain.outbox import SinkError

_FIELDS = ("transaction_id", "amount_minor", "currency", "error_code", "decline_code")
_BATCH = 100  # messages per request, as the library's own consumer sends


def properties(event: Event) -> dict[str, Any]:
    data = event.data
    props: dict[str, Any] = {"event_id": event.id, "attempt": event.attempt}
    props.update({name: data[name] for name in _FIELDS if data.get(name) is not None})
    if event.type in (EventType.SUCCESS, EventType.FAILED):
        props["success"] = event.type is EventType.SUCCESS
        props["state"] = data.get("state")
        if event.type is EventType.FAILED:
            props["will_retry"] = bool(data.get("will_retry"))
    elif event.type is EventType.ABANDONED:
        props["reason"] = data.get("reason")
    return props


class SegmentSink:
    name = "segment"

    def __init__(self, write_key: str, host: str, *, timeout: float = 10.0) -> None:
        from segment.analytics.client import Client

        self.host = host
        self.timeout = timeout
        self._write_key = write_key
        # send=False: track() builds and returns the message; sending is ours, below.
        self._client = Client(
            write_key=write_key, host=host, sync_mode=True, send=False, timeout=int(timeout)
        )

    def send(self, events: Sequence[Event]) -> None:
        from segment.analytics.request import post

        messages = []
        for event in events:
            name = ANALYTICS.get(event.type)
            if name is None:
                continue
            _, message = self._client.track(
                user_id=str(event.data.get("user_id")),
                event=name,
                properties=properties(event),
                timestamp=event.occurred_at,
                message_id=event.id,
            )
            messages.append(message)
        for start in range(0, len(messages), _BATCH):
            try:
                post(
                    self._write_key,
                    self.host,
                    timeout=self.timeout,
                    batch=messages[start : start + _BATCH],
                )
            except Exception as exc:  # APIError, or requests' connection errors and timeouts
                raise SinkError(f"segment {self.host}: {type(exc).__name__}: {exc}") from None

    def close(self) -> None:
        pass
