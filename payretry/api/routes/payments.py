"""Seed 000's retry queue: queue, status, cancel, a user's jobs, stats."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response

from payretry.api.auth import check_customer
from payretry.api.bodies import QueueBody, UpdateBody, queue_fields
from payretry.api.deps import Idempotent, Operator, ServicesDep, Viewer, ViewerOrCustomer
from payretry.api.idempotency import render
from payretry.api.models import (
    JobOut,
    JobPageOut,
    QueuedOut,
    StatsOut,
    StatusOut,
)
from payretry.api.routes.common import READ, WRITE, errors, path_id
from payretry.domain.models import ACTIVE_STATES
from payretry.service.explain import job_story
from payretry.service.views import events_document, job_dict, job_events, stats_document

router = APIRouter(tags=["payments"])
TransactionId = Annotated[str, "the transaction id"]


@router.get(
    "/api/payments/retry/stats",
    response_model=StatsOut,
    responses=errors(*READ),
    summary="Stats: totals, pending amounts per currency, failure reasons, success rates",
)
def stats(services: ServicesDep, token: Viewer) -> Response:
    wiring = services.wiring
    document = stats_document(services.store.stats(services.clock()))
    by_state = document["by_state"]
    seed = {
        "totalJobs": document["total"],
        "pendingJobs": sum(by_state.get(state.value, 0) for state in ACTIVE_STATES),
        "totalAmount": document["pending_amount_minor"],
        "jobsByErrorCode": document["by_error_code"],
    }
    depth = wiring.queue_depth()
    extra = {"queue": depth} if depth is not None else {}
    document = {
        **seed,
        **document,
        "events": events_document(services.events, wiring.sink_names),
        **extra,
    }
    return render(200, StatsOut.model_validate(document))


@router.get(
    "/api/payments/retry/user/{user_id}",
    response_model=JobPageOut,
    responses=errors(*READ),
    summary="A user's jobs, newest first, a page at a time",
)
def user_jobs(
    user_id: str,
    services: ServicesDep,
    token: Viewer,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=20, description="next_cursor")] = None,
) -> Response:
    page = services.lookups.jobs_for_user(path_id(user_id, "user_id"), after=cursor, limit=limit)
    document = {"jobs": [job_dict(job) for job in page.jobs], "next_cursor": page.next_cursor}
    return render(200, JobPageOut.model_validate(document))


@router.post(
    "/api/payments/retry/{transaction_id}",
    status_code=201,
    response_model=QueuedOut,
    responses={
        200: {"model": QueuedOut, "description": "An identical job already exists"},
        **errors(*WRITE),
    },
    summary="Queue a failed payment for retry",
)
def queue(
    transaction_id: TransactionId,
    body: QueueBody,
    services: ServicesDep,
    token: Operator,
    key: Idempotent,
) -> Response:
    def run() -> tuple[int, QueuedOut]:
        now = services.clock()
        fields = queue_fields(transaction_id, body)
        request = fields.job(now, services.wiring.settings.retry.window)
        job, created = services.operations.queue(request, now)
        services.wiring.dispatch_new([job.id])
        return (201 if created else 200), QueuedOut.model_validate(
            {**job_dict(job), "created": created}
        )

    return key.run(run)


@router.get(
    "/api/payments/retry/{transaction_id}",
    response_model=StatusOut,
    responses=errors(404, *READ),
    summary="A transaction's job (the active one, else the latest); ?explain=true tells its story",
)
def status(
    transaction_id: TransactionId,
    services: ServicesDep,
    token: ViewerOrCustomer,
    explain: bool = False,
) -> Response:
    txn = path_id(transaction_id, "transactionId")
    check_customer(token, txn)
    job = services.operations.status(txn)
    document = job_dict(job)
    if explain:
        steps = job_story(services.wiring.store, job, services.policy)
        document["story"] = [step.as_dict() for step in steps]
        document["events"] = job_events(services.events, job.id, services.wiring.sink_names)
    return render(200, StatusOut.model_validate(document))


@router.delete(
    "/api/payments/retry/{transaction_id}",
    response_model=JobOut,
    responses=errors(404, 409, 502, *READ),
    summary="Cancel a transaction's scheduled retries",
    description="A job waiting on the customer has its Checkout Session expired at the "
    "processor first: 409 if it was already paid (the job succeeds instead) or is paid with a "
    "method that settles later; 502 if the processor could not be asked (nothing changes).",
)
def cancel(transaction_id: TransactionId, services: ServicesDep, token: Operator) -> Response:
    txn = path_id(transaction_id, "transactionId")
    job = services.operations.cancel(txn, services.clock())
    return render(200, JobOut.model_validate(job_dict(job)))


@router.patch(
    "/api/payments/retry/{transaction_id}",
    response_model=JobOut,
    responses=errors(404, *WRITE),
    summary="New card data: revive a job that stopped or waits because its card needed it",
)
def update(
    transaction_id: TransactionId, body: UpdateBody, services: ServicesDep, token: Operator
) -> Response:
    txn = path_id(transaction_id, "transactionId")
    job = services.revivals.update(txn, body.payment_method, body.customer, services.clock())
    services.wiring.dispatch_new([job.id])
    return render(200, JobOut.model_validate(job_dict(job)))
