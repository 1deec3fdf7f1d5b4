"""Rows to domain records and back."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from payretry.domain.models import (
    Attempt,
    AttemptOutcome,
    CustomerAction,
    Job,
    JobState,
    ProcessorRefs,
)
from payretry.domain.money import Money
from payretry.domain.results import AttemptResult


def job_from_row(row: Any, attempts: Sequence[Attempt] = ()) -> Job:
    # by key: several times cheaper than a Row's attributes
    return job_from_mapping(row._mapping, attempts)


def job_from_mapping(r: Mapping[str, Any], attempts: Sequence[Attempt] = ()) -> Job:
    """A job from its column values by name (a SQLAlchemy row's mapping, a sqlite3.Row)."""
    return Job(
        id=r["id"],
        transaction_id=r["transaction_id"],
        user_id=r["user_id"],
        money=Money(r["amount_minor"], r["currency"]),
        error_code=r["error_code"],
        decline_code=r["decline_code"],
        error_message=r["error_message"],
        state=JobState(r["state"]),
        attempt_count=r["attempt_count"],
        max_attempts=r["max_attempts"],
        next_retry_at=r["next_retry_at"],
        created_at=r["created_at"],
        updated_at=r["updated_at"],
        expires_at=r["expires_at"],
        priority=r["priority"],
        refs=ProcessorRefs(
            r["payment_intent"], r["customer"], r["payment_method"], r["checkout_session"]
        ),
        metadata=dict(r["meta"] or {}),
        reason=r["reason"],
        policy_code=r["policy_code"],
        lease_token=r["lease_token"],
        lease_expires_at=r["lease_expires_at"],
        seq=r["seq"],
        rescues=r["rescues"],
        attempts=tuple(attempts),
        action=(
            CustomerAction(r["action_ref"], r["action_url"], r["action_expires_at"])
            if r["action_ref"]
            else None
        ),
        card_network=r["card_network"],
        card_fingerprint=r["card_fingerprint"],
        network_rule=r["network_rule"],
        revived_after=r["revived_after"],
    )


def attempt_outcome(result: AttemptResult) -> AttemptOutcome:
    if result.succeeded:
        return AttemptOutcome.SUCCEEDED
    return AttemptOutcome.AWAITING if result.awaiting else AttemptOutcome.FAILED


def action_values(result: AttemptResult) -> dict[str, Any]:
    action = result.action
    return {
        "b_action_ref": action.ref if action else None,
        "b_action_url": action.url if action else None,
        "b_action_expires": action.expires_at if action else None,
    }


def attempt_from_row(row: Any) -> Attempt:
    return attempt_from_mapping(row._mapping)


def attempt_from_mapping(r: Mapping[str, Any]) -> Attempt:
    """An attempt from its column values by name (a SQLAlchemy row's mapping, a sqlite3.Row)."""
    return Attempt(
        number=r["number"],
        idempotency_key=r["idempotency_key"],
        outcome=AttemptOutcome(r["outcome"]),
        started_at=r["started_at"],
        finished_at=r["finished_at"],
        error_code=r["error_code"],
        decline_code=r["decline_code"],
        message=r["message"],
        reference=r["reference"],
        decision=r["decision"],
        next_retry_at=r["next_retry_at"],
    )


def job_values(job: Job) -> dict[str, Any]:
    return {
        "id": job.id,
        "transaction_id": job.transaction_id,
        "user_id": job.user_id,
        "amount_minor": job.money.amount_minor,
        "currency": job.money.currency,
        "error_code": job.error_code,
        "decline_code": job.decline_code,
        "error_message": job.error_message,
        "state": job.state.value,
        "attempt_count": job.attempt_count,
        "max_attempts": job.max_attempts,
        "next_retry_at": job.next_retry_at,
        "created_at": job.created_at,
        "updated_at": job.updated_at,
        "expires_at": job.expires_at,
        "priority": job.priority,
        "payment_intent": job.refs.payment_intent,
        "customer": job.refs.customer,
        "payment_method": job.refs.payment_method,
        "checkout_session": job.refs.checkout_session,
        "meta": dict(job.metadata),
        "reason": job.reason,
        "policy_code": job.policy_code,
        "lease_token": None,
        "lease_expires_at": None,
        "action_ref": job.action.ref if job.action else None,
        "action_url": job.action.url if job.action else None,
        "action_expires_at": job.action.expires_at if job.action else None,
        "card_network": job.card_network,
        "card_fingerprint": job.card_fingerprint,
        "network_rule": job.network_rule,
        "revived_after": job.revived_after,
    }
