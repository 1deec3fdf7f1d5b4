"""Live events from the outbox: Server-Sent Events at /api/events, a WebSocket at
/api/events/ws. The stream is the outbox in delivery order (settled: on PostgreSQL no entry of
a transaction still in flight can appear behind it), so nothing is skipped.

Every event carries its stable id (`<job id>:<attempt>:<type>`, for dropping repeats) and a
position, `<txid>-<seq>-<n>`: the outbox entry and which of its events. SSE sends the position
as the `id:` line, so a reconnecting EventSource resumes with `Last-Event-ID`; both routes take
it as `?since=` (`0`: from the oldest entry kept; default: from now). Resuming from a position
sends exactly the events after it. Filter by `user_id` or `transaction_id`; a customer token
sees its own transaction only.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from payretry.api.auth import authenticated, check_role
from payretry.api.errors import ApiError
from payretry.api.routes.common import READ, errors
from payretry.api.services import Services, services_of
from payretry.domain.access import ApiToken, Role
from payretry.domain.events import Event
from payretry.domain.outbox import Cursor
from payretry.errors import InvalidInput, PayretryError

router = APIRouter(tags=["events"])
_POSITION = re.compile(r"^(\d{1,19})-(\d{1,19})-(\d{1,4})$")
BATCH = 200
KEEPALIVE = 15.0


@dataclass(frozen=True, slots=True)
class Position:
    """After event `index` (1-based) of the outbox entry (txid, seq)."""

    txid: int = 0
    seq: int = 0
    index: int = 0

    def __str__(self) -> str:
        return f"{self.txid}-{self.seq}-{self.index}"


def parse_position(text: str, field: str) -> Position:
    if text == "0":
        return Position()
    match = _POSITION.match(text)
    if match is None:
        raise InvalidInput("is not an event position like 0-42-1 (or 0)", field=field)
    return Position(*(int(part) for part in match.groups()))


@dataclass(frozen=True, slots=True)
class Filter:
    user_id: str | None = None
    transaction_id: str | None = None

    def __call__(self, event: Event) -> bool:
        if self.transaction_id is not None and event.transaction_id != self.transaction_id:
            return False
        return self.user_id is None or event.data.get("user_id") == self.user_id


class Reader:
    """Reads the outbox after a position, in batches, in a worker thread."""

    def __init__(self, services: Services, position: Position | None, keep: Filter) -> None:
        self.services = services
        self.position = position
        self.keep = keep

    def _start(self) -> Position:
        newest = self.services.events.recent_entries(limit=1)
        return Position(newest[0].txid, newest[0].seq, 10_000) if newest else Position()

    def read(self) -> list[tuple[Position, Event]]:
        if self.position is None:
            self.position = self._start()
        at = self.position
        # The entry the position is inside may still have events to send: read from just
        # before it (no entry sorts between (txid, seq - 1) and (txid, seq)).
        cursor = Cursor(at.txid, at.seq - 1) if at.seq else Cursor(at.txid, 0)
        out: list[tuple[Position, Event]] = []
        for entry in self.services.events.entries_after(cursor, BATCH):
            for index, event in enumerate(entry.events(), 1):
                here = Position(entry.txid, entry.seq, index)
                if (here.txid, here.seq, here.index) <= (at.txid, at.seq, at.index):
                    continue
                self.position = here
                if self.keep(event):
                    out.append((here, event))
        return out


def _filter(token: ApiToken, user_id: str | None, transaction_id: str | None) -> Filter:
    if token.role is Role.CUSTOMER:
        if transaction_id is not None and transaction_id != token.transaction_id:
            raise ApiError(403, "forbidden", "a customer token sees its own transaction only")
        return Filter(None, token.transaction_id)
    return Filter(user_id, transaction_id)


async def _events(
    reader: Reader, stopping: Callable[[], bool], poll: float
) -> AsyncIterator[list[tuple[Position, Event]]]:
    while not stopping():
        try:
            batch = await run_in_threadpool(reader.read)
        except PayretryError:  # the database went away: try again at the next poll
            batch = []
        yield batch
        if len(batch) < BATCH:
            await asyncio.sleep(poll)


@router.get(
    "/api/events",
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "Server-Sent Events"},
        **errors(*READ),
    },
    response_class=StreamingResponse,
    summary="Live events (Server-Sent Events), resumable with Last-Event-ID or ?since=",
)
async def events_sse(
    request: Request,
    since: Annotated[str | None, Query(max_length=64)] = None,
    user_id: Annotated[str | None, Query(max_length=255)] = None,
    transaction_id: Annotated[str | None, Query(max_length=255)] = None,
    last_event_id: Annotated[str | None, Header(max_length=64)] = None,
) -> StreamingResponse:
    token = await run_in_threadpool(authenticated, request)
    check_role(token, Role.VIEWER, customer=True)
    services = services_of(request.app)
    start = last_event_id or since
    field = "Last-Event-ID" if last_event_id else "since"
    reader = Reader(
        services,
        parse_position(start, field) if start else None,
        _filter(token, user_id, transaction_id),
    )
    poll = services.wiring.settings.http.events_poll.total_seconds()

    async def stream() -> AsyncIterator[bytes]:
        yield b": payretry events\nretry: 1000\n\n"
        idle = 0.0
        async for batch in _events(reader, services.draining.is_set, poll):
            if not batch:
                idle += poll
                if idle >= KEEPALIVE:
                    idle = 0.0
                    yield b": keep-alive\n\n"
                continue
            idle = 0.0
            chunk = "".join(
                f"id: {position}\nevent: {event.type.value}\ndata: "
                f"{json.dumps(event.as_dict(), separators=(',', ':'))}\n\n"
                for position, event in batch
            )
            yield chunk.encode()

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.websocket("/api/events/ws")
async def events_ws(
    websocket: WebSocket,
    since: Annotated[str | None, Query(max_length=64)] = None,
    user_id: Annotated[str | None, Query(max_length=255)] = None,
    transaction_id: Annotated[str | None, Query(max_length=255)] = None,
) -> None:
    """Each message is `{"id": <position>, "event": {...}}`; reconnect with `?since=<id>` of the
    last message seen. Authenticate with the Authorization header; a refused connection is
    closed with 4401 (no or bad token), 4403 (role) or 4422 (bad query) after an error
    message."""
    await websocket.accept()
    services = services_of(websocket.app)
    try:
        token = await run_in_threadpool(authenticated, websocket)
        check_role(token, Role.VIEWER, customer=True)
        reader = Reader(
            services,
            parse_position(since, "since") if since else None,
            _filter(token, user_id, transaction_id),
        )
    except (ApiError, InvalidInput) as exc:
        status = exc.status if isinstance(exc, ApiError) else 422
        kind = exc.kind
        await websocket.send_json(
            {"error": {"kind": kind, "message": exc.message, "field": exc.field}}
        )
        await websocket.close(code=4000 + status)
        return
    poll = services.wiring.settings.http.events_poll.total_seconds()
    try:
        while not services.draining.is_set():
            try:
                batch = await run_in_threadpool(reader.read)
            except PayretryError:
                batch = []
            for position, event in batch:
                await websocket.send_json({"id": str(position), "event": event.as_dict()})
            if len(batch) < BATCH:
                try:  # the wait doubles as a watch for the client going away
                    message = await asyncio.wait_for(websocket.receive(), timeout=poll)
                except TimeoutError:
                    continue
                if message["type"] == "websocket.disconnect":
                    return
        await websocket.close(code=1001)  # going away: the server is shutting down
    except WebSocketDisconnect:
        return
