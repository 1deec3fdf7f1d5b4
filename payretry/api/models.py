"""Response models: the JSON shape of each object, as the CLI prints it under --json
(payretry/service/views.py builds them), so OpenAPI documents exactly what both edges show.
One model per object, shared by every route that returns it. Times are ISO 8601 UTC strings;
money is integer minor units plus an ISO 4217 currency."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

Time = Annotated[str, Field(json_schema_extra={"format": "date-time"})]
MaybeTime = Annotated[str | None, Field(json_schema_extra={"format": "date-time"})]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Open(BaseModel):
    """Objects whose fields depend on their kind (events, story steps): the common fields
    typed, the rest allowed."""

    model_config = ConfigDict(extra="allow")


# -- errors ------------------------------------------------------------------------------------


class ErrorDetail(Model):
    kind: str
    message: str
    field: str | None


class ErrorOut(Model):
    error: ErrorDetail


# -- a job -------------------------------------------------------------------------------------


class AttemptOut(Model):
    number: int
    outcome: str
    error_code: str | None
    decline_code: str | None
    message: str | None
    started_at: Time
    finished_at: MaybeTime
    idempotency_key: str
    reference: str | None
    decision: str | None
    next_retry_at: MaybeTime


class CustomerActionOut(Model):
    checkout_session: str
    url: str | None
    expires_at: MaybeTime


class JobOut(Model):
    job_id: str
    transaction_id: str
    user_id: str
    state: str
    amount_minor: int
    amount: str
    currency: str
    error_code: str
    decline_code: str | None
    error_message: str | None
    attempt_count: int
    max_attempts: int
    attempts_remaining: int
    retry_available: bool
    next_retry_at: MaybeTime
    expires_at: MaybeTime
    created_at: Time
    updated_at: Time
    priority: int
    reason: str | None
    policy_row: str | None
    network_rule: str | None  # the card-network rule that moved or stopped the job
    card_network: str | None
    card_fingerprint: str | None
    card_key: str | None  # the card ledger its attempts count in
    payment_intent: str | None
    customer: str | None
    payment_method: str | None
    checkout_session: str | None
    customer_action: CustomerActionOut | None
    metadata: dict[str, str]
    attempts: list[AttemptOut]


class QueuedOut(JobOut):
    """`payretry queue --json`: the job, and whether this request created it."""

    created: bool


class StepOut(Open):
    """One sentence of a job's story (`payretry explain --json`)."""

    at: MaybeTime
    kind: str
    text: str


class EventOut(Open):
    """An event as every sink receives it (the fields beyond these depend on its type)."""

    id: str
    type: str
    occurred_at: Time
    job_id: str
    attempt: int
    transaction_id: str | None = None
    user_id: str | None = None
    amount_minor: int | None = None
    currency: str | None = None
    state: str | None = None


class JobEventOut(EventOut):
    """An event of a job, with the sinks that have (not yet) taken it."""

    seq: int
    delivered_to: list[str]
    pending_for: list[str]


class StatusOut(JobOut):
    """A job; with `?explain=true`, also its story and its events (`payretry explain`)."""

    story: list[StepOut] | None = None
    events: list[JobEventOut] | None = None


class JobPageOut(Model):
    jobs: list[JobOut]
    next_cursor: str | None


# -- stats -------------------------------------------------------------------------------------


class CursorOut(Model):
    txid: int
    seq: int


class SinkOut(Model):
    sink: str
    pending: int
    delivered: int
    cursor: CursorOut
    failures: int
    last_error: str | None
    retry_at: MaybeTime


class OutboxOut(Model):
    changes: int
    sinks: list[SinkOut]


class StatsOut(Model):
    """`payretry stats --json`, with the seed's names first."""

    totalJobs: int  # noqa: N815 - the seed's names
    pendingJobs: int  # noqa: N815
    totalAmount: dict[str, int]  # noqa: N815 - minor units of active jobs, per currency
    jobsByErrorCode: dict[str, int]  # noqa: N815
    total: int
    by_state: dict[str, int]
    pending_amount_minor: dict[str, int]
    pending_amount: dict[str, str]
    by_error_code: dict[str, int]
    attempts: dict[str, int]
    success_rate: float | None
    success_rate_by_attempt: dict[str, float | None]
    due_now: int
    due_next_hour: int
    oldest_due_at: MaybeTime
    events: OutboxOut
    queue: dict[str, Any] | None = None  # sqs mode only


# -- outcomes ----------------------------------------------------------------------------------


class JobResultOut(Model):
    transaction_id: str
    job_id: str
    attempt: int
    outcome: str
    state: str
    error_code: str | None
    decline_code: str | None
    next_retry_at: MaybeTime
    reason: str | None


class RetryOut(Model):
    """`payretry retry --json`: the attempt's outcome and the job after it."""

    result: JobResultOut
    job: JobOut


class CheckoutStatusOut(Model):
    sessionId: str  # noqa: N815 - seed 004's names
    transactionId: str  # noqa: N815
    state: str
    stateText: str  # noqa: N815
    retryAvailable: bool  # noqa: N815
    retryAttemptsRemaining: int  # noqa: N815
    attemptCount: int  # noqa: N815
    maxAttempts: int  # noqa: N815
    failureReason: str | None  # noqa: N815
    nextRetryAt: MaybeTime  # noqa: N815
    expiresAt: MaybeTime  # noqa: N815
    checkoutUrl: str | None  # noqa: N815
    amount_minor: int
    currency: str


class FirstAttemptOut(Model):
    idempotency_key: str
    outcome: str
    reference: str | None
    error_code: str | None
    decline_code: str | None
    message: str | None
    started_at: Time
    finished_at: Time


class DecisionOut(Model):
    outcome: str
    reason: str
    policy_row: str
    next_retry_at: MaybeTime


class ProcessOut(Model):
    """processPaymentWithRetry: the first attempt's outcome, and the retry job if one was
    queued."""

    success: bool
    shouldRetry: bool  # noqa: N815 - the seed's names
    transaction_id: str
    replayed: bool
    attempt: FirstAttemptOut
    decision: DecisionOut | None
    job: JobOut | None


# -- tokens, health ----------------------------------------------------------------------------


class TokenOut(Model):
    id: str
    name: str
    role: str
    transaction_id: str | None
    created_at: Time
    expires_at: MaybeTime
    revoked_at: MaybeTime


class TokenCreatedOut(TokenOut):
    token: str  # shown once; only its keyed hash is stored


class TokenListOut(Model):
    tokens: list[TokenOut]


class HealthOut(Model):
    ok: bool
    mode: str
    reason: str
    oldest_due_at: MaybeTime
    database: str


class ReadyOut(Model):
    ok: bool
    database: str
    draining: bool


class WebhookOut(Model):
    """What a Stripe event did (`duplicate`: a redelivery; nothing was done again)."""

    received: bool
    event_id: str
    type: str
    effect: str
    applied: bool
    duplicate: bool
    job_id: str | None = None
    transaction_id: str | None = None
