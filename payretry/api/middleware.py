"""ASGI middleware: bounded request bodies (413) and draining on shutdown (503). Pure ASGI, so
the body is read once, before any route, and a refused request touches nothing."""

from __future__ import annotations

import threading
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from payretry.api.errors import body as error_body

_BODY_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


async def _answer(send: Send, status: int, kind: str, message: str, extra: list[Any]) -> None:
    payload = error_body(kind, message)
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
        *extra,
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


class Guard:
    """Refuses bodies over `max_body` bytes (by Content-Length, or while reading a chunked
    one) with 413, and every request with 503 once `draining` is set."""

    def __init__(self, app: ASGIApp, *, max_body: int, draining: threading.Event) -> None:
        self.app = app
        self.max_body = max_body
        self.draining = draining

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.draining.is_set():
            await _answer(
                send,
                503,
                "unavailable",
                "the server is shutting down; send the request to another replica",
                [(b"connection", b"close"), (b"retry-after", b"1")],
            )
            return
        if scope["method"] not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        too_large = f"the body is larger than {self.max_body} bytes"
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    length = 0
                if length > self.max_body:
                    await _answer(send, 413, "too_large", too_large, [(b"connection", b"close")])
                    return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                await _answer(send, 413, "too_large", too_large, [(b"connection", b"close")])
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        whole = b"".join(chunks)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": whole, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
