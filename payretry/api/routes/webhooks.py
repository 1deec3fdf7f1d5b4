"""Stripe webhooks in: `POST /webhooks/stripe`. No bearer token: the signature is the
authentication (checked by the Stripe SDK against the endpoint secret, in the service's
verifier). A bad, missing or stale signature is 400 and nothing changes; with no secret
configured the route answers 503."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from payretry.api.deps import ServicesDep
from payretry.api.errors import ApiError
from payretry.api.idempotency import render
from payretry.api.models import ErrorOut, WebhookOut
from payretry.domain.webhooks import WEBHOOK_PATH
from payretry.errors import BadSignature

router = APIRouter(tags=["webhooks"])
OFF = (
    "Stripe webhooks are off: set [stripe] webhook_secret (PAYRETRY_STRIPE_WEBHOOK_SECRET) or "
    "webhook_secret_file to the endpoint's signing secret (whsec_...)"
)


@router.post(
    WEBHOOK_PATH,
    response_model=WebhookOut,
    responses={
        400: {"model": ErrorOut, "description": "Bad, missing or stale Stripe-Signature"},
        413: {"model": ErrorOut, "description": "The body is too large"},
        502: {"model": ErrorOut, "description": "Stripe could not be asked (redelivered)"},
        503: {"model": ErrorOut, "description": "Webhooks are off, or the database is down"},
    },
    summary="Stripe webhook events (signed with the endpoint secret; no bearer token)",
)
async def stripe_webhook(request: Request, services: ServicesDep) -> Response:
    hooks = services.webhooks
    if hooks is None:
        raise ApiError(503, "unavailable", OFF)
    payload = await request.body()
    signature = request.headers.get("stripe-signature")
    try:
        record = await run_in_threadpool(hooks.receive, payload, signature)
    except BadSignature as exc:
        raise ApiError(400, exc.kind, exc.message, field=exc.field) from None
    out = WebhookOut(
        received=True,
        event_id=record.event_id,
        type=record.type,
        effect=record.effect,
        applied=record.applied,
        duplicate=record.duplicate,
        job_id=record.job_id,
        transaction_id=record.transaction_id,
    )
    return render(200, out)
