"""Seed 004's customer routes: retry now (the customer or an operator asks), and the status a
checkout page shows. Both take a transaction id or a Checkout Session id, and accept a customer
token of that transaction."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from payretry.api.auth import check_customer_job
from payretry.api.deps import Idempotent, OperatorOrCustomer, ServicesDep, ViewerOrCustomer
from payretry.api.idempotency import render
from payretry.api.models import CheckoutStatusOut, JobOut, JobResultOut, RetryOut
from payretry.api.routes.common import READ, WRITE, errors, path_id
from payretry.api.services import Services
from payretry.domain.access import ApiToken
from payretry.domain.models import Job
from payretry.errors import NotFound
from payretry.service.checkout_status import checkout_status
from payretry.service.views import job_dict

router = APIRouter(tags=["checkout"])


def resolve(services: Services, token: ApiToken, session_id: str) -> Job:
    """The job of a transaction id, else of a Checkout Session id (original or current)."""
    sid = path_id(session_id, "sessionId")
    job = services.store.find(sid) or services.lookups.find_by_session(sid)
    check_customer_job(token, job, sid)
    if job is None:
        raise NotFound(f"no retry job for transaction or checkout session {sid}")
    return job


@router.post(
    "/payments/retry/{session_id}",
    response_model=RetryOut,
    responses=errors(404, 429, 502, *WRITE),
    summary="Retry now, by transaction or Checkout Session id (throttled)",
)
def retry_now(
    session_id: str, services: ServicesDep, token: OperatorOrCustomer, key: Idempotent
) -> Response:
    def run() -> tuple[int, RetryOut]:
        job = resolve(services, token, session_id)
        result = services.retries.retry(job, services.clock())
        after = services.store.find(job.transaction_id) or job
        return 200, RetryOut(
            result=JobResultOut.model_validate(result.as_dict()),
            job=JobOut.model_validate(job_dict(after)),
        )

    return key.run(run)


@router.get(
    "/payments/checkout/{session_id}/status",
    response_model=CheckoutStatusOut,
    responses=errors(404, *READ),
    summary="What the checkout page shows: retry available, attempts remaining, why it failed",
)
def checkout(session_id: str, services: ServicesDep, token: ViewerOrCustomer) -> Response:
    job = resolve(services, token, session_id)
    return render(200, CheckoutStatusOut.model_validate(checkout_status(job, session_id)))
