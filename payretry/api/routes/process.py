"""processPaymentWithRetry (seed 000): the first attempt now; a retry job only if it failed and
its policy row retries it."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from payretry.api.bodies import ProcessBody, process_fields
from payretry.api.deps import Idempotent, Operator, ServicesDep
from payretry.api.models import DecisionOut, FirstAttemptOut, JobOut, ProcessOut
from payretry.api.routes.common import WRITE, errors
from payretry.domain.durations import iso
from payretry.errors import InvalidInput
from payretry.service.process import Processed
from payretry.service.views import job_dict

router = APIRouter(tags=["process"])


def processed(done: Processed) -> ProcessOut:
    attempt, result, decision = done.attempt, done.result, done.decision
    return ProcessOut(
        success=done.success,
        shouldRetry=done.should_retry,
        transaction_id=done.transaction_id,
        replayed=done.replayed,
        attempt=FirstAttemptOut(
            idempotency_key=attempt.idempotency_key,
            outcome=attempt.outcome or "pending",
            reference=result.reference,
            error_code=result.error_code,
            decline_code=result.decline_code,
            message=result.message,
            started_at=iso(attempt.started_at) or "",
            finished_at=iso(attempt.finished_at) or "",
        ),
        decision=(
            DecisionOut(
                outcome=decision.outcome.value,
                reason=decision.reason,
                policy_row=decision.row.code,
                next_retry_at=iso(decision.next_retry_at),
            )
            if decision is not None
            else None
        ),
        job=JobOut.model_validate(job_dict(done.job)) if done.job is not None else None,
    )


@router.post(
    "/api/payments/process",
    response_model=ProcessOut,
    responses=errors(502, *WRITE),
    summary="Attempt a payment now; on a retryable failure, queue it under its policy row",
)
def process(body: ProcessBody, services: ServicesDep, token: Operator, key: Idempotent) -> Response:
    def run() -> tuple[int, ProcessOut]:
        fields = process_fields(body)
        request = fields.job(services.clock(), services.wiring.settings.retry.window)
        if request.refs.checkout_session:  # pragma: no cover - no field reaches it
            raise InvalidInput("is not supported here; queue it instead", field="checkout_session")
        return 200, processed(services.process.process(request))

    return key.run(run)
