"""The application factory: routes, error handlers, the body guard, CORS when configured, and
the services the routes receive, built once from the composition root."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.concurrency import run_in_threadpool

from payretry import __version__
from payretry.api import errors, pages
from payretry.api.middleware import Guard
from payretry.api.routes import checkout, events, ops, payments, process, tokens, webhooks
from payretry.api.services import Services
from payretry.errors import PayretryError
from payretry.wiring import Wiring

log = logging.getLogger("payretry")
PURGE_EVERY = 3600.0  # seconds between purges of expired idempotency keys

DESCRIPTION = """Retry failed payments over HTTP: queue, look, cancel, retry now, process.

Authenticate with `Authorization: Bearer <token>` (`payretry token create`). Every POST takes an
`Idempotency-Key`. Errors are `{"error": {"kind", "message", "field"}}`. Times are ISO 8601 UTC;
money is integer minor units plus an ISO 4217 currency."""


async def _purge_keys(services: Services) -> None:
    while True:
        try:
            removed = await run_in_threadpool(services.idempotency.purge)
            if removed:
                log.info("purged %d expired idempotency key(s)", removed)
        except PayretryError as exc:
            log.warning("could not purge idempotency keys: %s", exc)
        await asyncio.sleep(PURGE_EVERY)


def create_app(wiring: Wiring, *, services: Services | None = None) -> FastAPI:
    """The API over `wiring` (its store, processor, policy and settings; its clock)."""
    services = services or Services(wiring)
    services.build()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        purge = asyncio.create_task(_purge_keys(services))
        try:
            yield
        finally:
            purge.cancel()

    app = FastAPI(
        title="payretry",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.services = services
    errors.install(app)
    for module in (payments, checkout, process, events, tokens, ops, webhooks):
        app.include_router(module.router)
    pages.install(app, services)  # /pay/{id}, /admin, /static
    http = wiring.settings.http
    origins = [o.strip() for o in http.cors_origins.split(",") if o.strip()]
    if origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "Last-Event-ID"],
            expose_headers=["Retry-After", "Idempotent-Replayed"],
        )
    app.add_middleware(Guard, max_body=http.max_body, draining=services.draining)
    return app
