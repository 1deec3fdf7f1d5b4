"""Live events: SSE and WebSocket streams of the outbox, resumed after a disconnect (mid-entry
too) with no event lost and none repeated; filters; a customer token sees its own."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from payretry.domain.outbox import Cursor
from tests.api.conftest import Api


def all_ids(api: Api) -> list[str]:
    entries = api.wiring.store.entries_after(Cursor(), 10_000)
    return [event.id for entry in entries for event in entry.events()]


def visible_ids(api: Api, kind: str) -> list[str]:
    """Every event id, once an event of `kind` can be read: on PostgreSQL the outbox hands out
    an entry only when no older transaction is still open anywhere on the server (so none can
    commit an entry before it later), which another process's transaction may delay."""
    deadline = time.monotonic() + 10
    while True:
        entries = api.wiring.store.entries_after(Cursor(), 10_000)
        events = [event for entry in entries for event in entry.events()]
        if any(event.type.value == kind for event in events) or time.monotonic() > deadline:
            return [event.id for event in events]
        time.sleep(0.05)


def sse(client: httpx.Client, count: int, **params: Any) -> list[tuple[str, dict[str, Any]]]:
    """Read `count` events from /api/events, then hang up."""
    headers = {}
    if "last_event_id" in params:
        headers["Last-Event-ID"] = params.pop("last_event_id")
    got: list[tuple[str, dict[str, Any]]] = []
    with client.stream("GET", "/api/events", params=params, headers=headers) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        position, data = "", ""
        lines: Iterator[str] = response.iter_lines()
        for line in lines:
            if line.startswith("id: "):
                position = line[4:]
            elif line.startswith("data: "):
                data = line[6:]
            elif line == "" and data:
                got.append((position, json.loads(data)))
                data = ""
                if len(got) == count:
                    break
    return got


def test_sse_resumes_after_a_disconnect_with_nothing_lost_or_repeated(api: Api) -> None:
    viewer = api.client("viewer")
    api.queue("txn_1", metadata={"simulate": "processing_error,succeeded"})  # 2 events
    first = sse(viewer, 1, since="0")  # hang up in the middle of the first entry's events
    api.queue("txn_2")
    api.client("operator").post("/payments/retry/txn_1")  # initiated, failed, scheduled, note
    expected = visible_ids(api, "retry_failed")
    rest = sse(viewer, len(expected) - 1, last_event_id=first[-1][0])
    seen = [event["id"] for _, event in first + rest]
    assert seen == expected
    assert len(set(seen)) == len(seen)
    kinds = [event["type"] for _, event in first + rest]
    assert kinds[:2] == ["retry_scheduled", "user_notification"] and "retry_failed" in kinds
    # Positions are the resume points: from the last one, nothing is left to send yet.
    positions = [position for position, _ in first + rest]
    assert len(set(positions)) == len(positions)


def test_sse_filters_and_customer_scope(api: Api) -> None:
    api.queue("txn_a")
    api.queue("txn_b", metadata={"userId": "usr_b"})
    viewer = api.client("viewer")
    only_b = sse(viewer, 2, since="0", user_id="usr_b")
    assert {event["transaction_id"] for _, event in only_b} == {"txn_b"}
    only_a = sse(viewer, 2, since="0", transaction_id="txn_a")
    assert {event["transaction_id"] for _, event in only_a} == {"txn_a"}
    customer = api.client(api.customer("txn_a"))
    mine = sse(customer, 2, since="0")
    assert {event["transaction_id"] for _, event in mine} == {"txn_a"}
    refused = customer.get("/api/events", params={"transaction_id": "txn_b"})
    assert refused.status_code == 403
    assert api.client(None).get("/api/events").status_code == 401
    bad = viewer.get("/api/events", params={"since": "yesterday"})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "since"


def test_sse_from_now_sends_only_new_events(api: Api) -> None:
    api.queue("txn_old")
    viewer = api.client("viewer")
    with viewer.stream("GET", "/api/events") as response:
        lines = response.iter_lines()
        assert next(lines).startswith(":")  # the stream is open
        api.queue("txn_new")
        for line in lines:
            if line.startswith("data: "):
                assert json.loads(line[6:])["transaction_id"] == "txn_new"
                break


def ws_url(api: Api, **params: str) -> str:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return api.url.replace("http://", "ws://") + "/api/events/ws" + (f"?{query}" if query else "")


def ws_read(api: Api, count: int, **params: str) -> list[dict[str, Any]]:
    headers = {"Authorization": f"Bearer {api.tokens['viewer']}"}
    got: list[dict[str, Any]] = []
    with connect(ws_url(api, **params), additional_headers=headers, open_timeout=10) as ws:
        while len(got) < count:
            got.append(json.loads(ws.recv(timeout=10)))
    return got


def test_websocket_resumes_after_a_disconnect(api: Api) -> None:
    api.queue("txn_w")
    first = ws_read(api, 1, since="0")
    api.queue("txn_w2")
    api.client("operator").delete("/api/payments/retry/txn_w")
    expected = all_ids(api)
    rest = ws_read(api, len(expected) - 1, since=first[-1]["id"])
    assert [m["event"]["id"] for m in first + rest] == expected


def test_websocket_refuses_without_a_token(api: Api) -> None:
    with connect(ws_url(api), open_timeout=10) as ws:
        message = json.loads(ws.recv(timeout=10))
        assert message["error"]["kind"] == "unauthorized"
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
