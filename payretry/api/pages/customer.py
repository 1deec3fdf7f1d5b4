"""The customer's payment page, `/pay/{transaction or Checkout Session id}`.

How the customer token reaches the page: the link carries it once (`/pay/txn_123?token=prt_...`,
from `payretry token customer` or `POST /api/tokens/customer`). The first request exchanges it
for an HttpOnly, SameSite=Strict cookie scoped to this page's path and redirects to the bare
URL, so the token is in one request line only, never in the page, its links, its history entry
after the redirect or a Referer (Referrer-Policy: no-referrer); uvicorn's access log is off.
The token stays valid until it expires, so the same link opened again (another device) works.
A token that is unknown, expired, revoked or of another transaction is a 404, as is a missing
or forged cookie: the page reveals nothing, not even that the payment exists.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from payretry.api.pages.common import PAY_COOKIE, pages_of, path_of, see_other, services
from payretry.api.routes.events import Filter, Reader
from payretry.domain.access import ApiToken, Role
from payretry.domain.models import Job
from payretry.domain.requests import ClaimState, StoredResponse
from payretry.errors import InvalidInput, PayretryError, Refused, Throttled
from payretry.service.payment_page import RESULTS, payment_view

router = APIRouter(include_in_schema=False)
KEEPALIVE = 15.0


def _job(request: Request, ref: str) -> Job | None:
    if not 1 <= len(ref) <= 255 or not ref.isprintable():
        return None
    s = services(request)
    return s.store.find(ref) or s.lookups.find_by_session(ref)


def _customer(request: Request, ref: str) -> tuple[Job, ApiToken] | None:
    """The job and the customer token behind this page's cookie, or None (then: 404)."""
    job = _job(request, ref)
    if job is None:
        return None
    pages = pages_of(request)
    token = pages.sessions.check(request.cookies.get(PAY_COOKIE), f"pay:{job.transaction_id}")
    if token is None or token.transaction_id != job.transaction_id:
        return None
    return job, token


def _context(request: Request, ref: str, job: Job, done: str | None) -> dict[str, Any]:
    s = services(request)
    now = s.clock()
    view = payment_view(job, now, s.retries.throttle.wait(job, now))
    return {
        "view": view,
        "base": path_of(ref),
        "key": secrets.token_urlsafe(16),
        "done": RESULTS.get(done or ""),
    }


@router.get("/pay/{ref}", response_class=HTMLResponse)
def page(request: Request, ref: str, token: str | None = None, done: str | None = None) -> Response:
    pages = pages_of(request)
    if token is not None:  # the link: exchange the token for the page's cookie, once
        job = _job(request, ref)
        found = services(request).tokens.authenticate(token) if len(token) < 200 else None
        if (
            job is None
            or found is None
            or found.role is not Role.CUSTOMER
            or found.transaction_id != job.transaction_id
        ):
            return pages.not_found(request)
        value, ends = pages.sessions.open(found, f"pay:{job.transaction_id}")
        response = see_other(path_of(ref))
        max_age = int((ends - services(request).clock()).total_seconds())
        pages.session_cookie(request, response, PAY_COOKIE, value, path_of(ref), max_age)
        return response
    found_job = _customer(request, ref)
    if found_job is None:
        return pages.not_found(request)
    job, _ = found_job
    return pages.render(request, "pay.html", **_context(request, ref, job, done))


@router.get("/pay/{ref}/status", response_class=HTMLResponse)
def status(request: Request, ref: str) -> Response:
    """The status section alone: what the page's script swaps in on each event."""
    found = _customer(request, ref)
    if found is None:
        return pages_of(request).not_found(request)
    return pages_of(request).render(
        request, "pay_status.html", **_context(request, ref, found[0], None)
    )


@router.post("/pay/{ref}/retry")
def retry(
    request: Request,
    ref: str,
    csrf: Annotated[str | None, Form(max_length=200)] = None,
    key: Annotated[str | None, Form(max_length=64)] = None,
) -> Response:
    """A customer-initiated retry: the throttle and the retry-now use case of the API, under
    the form's idempotency key (a resent form answers as the first did, charging nothing)."""
    pages = pages_of(request)
    found = _customer(request, ref)
    if found is None:
        return pages.not_found(request)
    if not pages.csrf_ok(request, csrf):
        return pages.refused_csrf(request)
    job, token = found
    s = services(request)
    scope = f"page:{token.id}"
    claim = None
    if key:
        try:
            claim = s.idempotency.claim(scope, key, "POST", path_of(ref) + "/retry", b"retry")
        except InvalidInput:
            claim = None
        if claim is not None and claim.state is ClaimState.REPLAY and claim.response:
            return see_other(f"{path_of(ref)}?done={claim.response.body.decode()}")
        if claim is not None and claim.state is not ClaimState.CLAIMED:
            return see_other(f"{path_of(ref)}?done=busy")
    done = "refused"
    keep = True
    try:
        result = s.retries.retry(job, s.clock())
        done = str(result.outcome)
    except Throttled:
        done, keep = "throttled", False
    except Refused:
        done = "refused"
    except PayretryError as exc:
        done, keep = ("in_doubt" if exc.kind == "in_doubt" else "refused"), False
    if claim is not None and claim.token is not None and key:
        if keep:
            stored = StoredResponse(303, done.encode(), "text/plain")
            s.idempotency.complete(scope, key, claim.token, stored)
        else:
            s.idempotency.release(scope, key, claim.token)
    return see_other(f"{path_of(ref)}?done={done}")


@router.get("/pay/{ref}/events")
async def events(request: Request, ref: str) -> Response:
    """Server-Sent Events for this page: `update` whenever its payment changes (what changed
    is read from the status section, never from the stream)."""
    found = await run_in_threadpool(_customer, request, ref)
    if found is None:
        return await run_in_threadpool(pages_of(request).not_found, request)
    job, _ = found
    s = services(request)
    reader = Reader(s, None, Filter(None, job.transaction_id))
    poll = s.wiring.settings.http.events_poll.total_seconds()

    async def stream() -> AsyncIterator[bytes]:
        yield b": payretry page events\nretry: 2000\n\n"
        idle = 0.0
        while not s.draining.is_set():
            try:
                batch = await run_in_threadpool(reader.read)
            except PayretryError:
                batch = []
            if batch:
                idle = 0.0
                yield f"event: update\ndata: {len(batch)}\n\n".encode()
            else:
                idle += poll
                if idle >= KEEPALIVE:
                    idle = 0.0
                    yield b": keep-alive\n\n"
            await asyncio.sleep(poll)

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
