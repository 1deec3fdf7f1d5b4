"""Operating the server: /healthz (the checks of `payretry health`, and the database),
/readyz (may this replica take requests: the database answers and it is not shutting down),
/metrics (Prometheus, the same registry as `serve --metrics-port`)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from payretry.api.deps import ServicesDep
from payretry.api.idempotency import render
from payretry.api.models import HealthOut, ReadyOut
from payretry.api.services import Services
from payretry.errors import PayretryError
from payretry.service.health import check_health

router = APIRouter(tags=["operations"])


def _database(services: Services) -> str:
    try:
        services.lookups.ping()
    except PayretryError as exc:
        return f"unreachable: {exc}"
    return "ok"


@router.get("/healthz", response_model=HealthOut, responses={503: {"model": HealthOut}})
def healthz(services: ServicesDep) -> Response:
    database = _database(services)
    if database != "ok":
        document = {"ok": False, "mode": "unknown", "reason": database, "oldest_due_at": None}
    else:
        settings = services.wiring.settings
        health = check_health(services.store, services.clock(), settings.health.max_due_age)
        document = health.as_dict()
    out = HealthOut.model_validate({**document, "database": database})
    return render(200 if out.ok else 503, out)


@router.get("/readyz", response_model=ReadyOut, responses={503: {"model": ReadyOut}})
def readyz(services: ServicesDep) -> Response:
    database = _database(services)
    draining = services.draining.is_set()
    out = ReadyOut(ok=database == "ok" and not draining, database=database, draining=draining)
    return render(200 if out.ok else 503, out)


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
)
async def metrics(services: ServicesDep) -> Response:
    from payretry.sinks.prometheus import exposition

    body, content_type = await run_in_threadpool(exposition, services.wiring.telemetry())
    return Response(body, 200, media_type=content_type)
