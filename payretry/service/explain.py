"""A job's story in plain sentences: what failed, which policy row applied, why the next retry
is when it is, why it stopped. Built from the job, its attempts and the current policy."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from payretry.domain.durations import format_duration, iso
from payretry.domain.models import Attempt, AttemptOutcome, Job
from payretry.domain.policy import RetryPolicy


@dataclass(frozen=True, slots=True)
class Step:
    at: datetime | None
    kind: str  # queued, policy, attempt, decision, window, state
    text: str
    data: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {"at": iso(self.at), "kind": self.kind, "text": self.text, **self.data}


def _code(error_code: str | None, decline_code: str | None) -> str:
    if not error_code:
        return "an unknown error"
    return error_code + (f" (decline code {decline_code})" if decline_code else "")


def _matched(
    policy: RetryPolicy, error_code: str, decline_code: str | None, *, describe: bool = True
) -> str:
    lookup = policy.lookup(error_code, decline_code)
    how = {
        "decline_code": f"its decline code {decline_code}",
        "error_code": f"its error code {error_code}",
        "default": f"no row for {_code(error_code, decline_code)}, so the default",
    }[lookup.matched]
    if not describe:
        return f"policy row {lookup.row.code!r}"
    return f"policy row {lookup.row.code!r}, matched on {how} ({lookup.row.describe()})"


def _attempt_steps(job: Job, attempt: Attempt, policy: RetryPolicy) -> list[Step]:
    key = {"idempotency_key": attempt.idempotency_key, "attempt": attempt.number}
    started = iso(attempt.started_at)
    if attempt.outcome is AttemptOutcome.PENDING:
        return [
            Step(
                attempt.started_at,
                "attempt",
                f"Attempt {attempt.number} was sent at {started}; its outcome is not recorded yet "
                "(in flight, or its runner died: the rescue re-sends it with the same key "
                f"{attempt.idempotency_key}).",
                {**key, "outcome": "pending"},
            )
        ]
    if attempt.outcome is AttemptOutcome.SUCCEEDED:
        ref = f" (reference {attempt.reference})" if attempt.reference else ""
        return [
            Step(
                attempt.finished_at or attempt.started_at,
                "attempt",
                f"Attempt {attempt.number} at {started} succeeded{ref}.",
                {**key, "outcome": "succeeded", "reference": attempt.reference},
            )
        ]
    failed = Step(
        attempt.started_at,
        "attempt",
        f"Attempt {attempt.number} at {started} failed with "
        f"{_code(attempt.error_code, attempt.decline_code)}"
        + (f": {attempt.message}." if attempt.message else "."),
        {
            **key,
            "outcome": attempt.outcome.value,
            "error_code": attempt.error_code,
            "decline_code": attempt.decline_code,
            "message": attempt.message,
        },
    )
    steps = [failed]
    if attempt.error_code is None or attempt.decision is None:
        return steps
    rule = _matched(policy, attempt.error_code, attempt.decline_code, describe=False)
    when = attempt.finished_at
    decision = attempt.decision
    if decision == "rescheduled" and attempt.next_retry_at is not None and when is not None:
        wait = format_duration(attempt.next_retry_at - when)
        text = (
            f"Under {rule}, attempt {attempt.number + 1} waits {wait}: next retry at "
            f"{iso(attempt.next_retry_at)}."
        )
    elif decision == "failed":
        text = f"Under {rule}, this error is never retried: the job failed."
    elif decision == "exhausted":
        text = (
            f"Under {rule}, with the global cap of {policy.cap}, no attempts were left "
            f"after attempt {attempt.number}: the job is exhausted."
        )
    elif decision == "abandoned":
        text = (
            f"Under {rule}, the next retry would have fallen after the payment window "
            f"(ends {iso(job.expires_at)}): the job was abandoned."
        )
    elif decision == "awaiting_payer":
        text = "The customer was asked to complete a new checkout session."
    else:
        text = f"Decision: {decision}."
    steps.append(
        Step(
            when,
            "decision",
            text,
            {
                "decision": decision,
                "policy_row": policy.lookup(attempt.error_code, attempt.decline_code).row.code,
                "next_retry_at": iso(attempt.next_retry_at),
            },
        )
    )
    return steps


def explain(job: Job, policy: RetryPolicy) -> list[Step]:
    steps = [
        Step(
            job.created_at,
            "queued",
            f"{job.transaction_id}: {job.money} for user {job.user_id} was queued at "
            f"{iso(job.created_at)} after {_code(job.error_code, job.decline_code)}"
            + (f" ({job.error_message})." if job.error_message else "."),
            {
                "amount_minor": job.money.amount_minor,
                "currency": job.money.currency,
                "error_code": job.error_code,
                "decline_code": job.decline_code,
            },
        ),
        Step(
            job.created_at,
            "policy",
            f"It was scheduled under {_matched(policy, job.error_code, job.decline_code)}, "
            f"at most {job.max_attempts} attempt(s), priority {job.priority}.",
            {
                "policy_row": policy.lookup(job.error_code, job.decline_code).row.code,
                "max_attempts": job.max_attempts,
                "priority": job.priority,
            },
        ),
    ]
    if job.expires_at is not None:
        steps.append(
            Step(
                job.expires_at,
                "window",
                f"Its payment window ends at {iso(job.expires_at)}; no retry is made after it.",
                {"expires_at": iso(job.expires_at)},
            )
        )
    for attempt in job.attempts:
        steps.extend(_attempt_steps(job, attempt, policy))
    state = job.state.value
    if job.state.final:
        now = f"It is {state}: {job.reason}." if job.reason else f"It is {state}."
    elif job.state.value == "scheduled":
        now = (
            f"It is scheduled: attempt {job.attempt_count + 1} of {job.max_attempts} at "
            f"{iso(job.next_retry_at)}."
        )
    else:
        now = f"It is {state}" + (f": {job.reason}." if job.reason else ".")
    steps.append(
        Step(
            job.updated_at,
            "state",
            now,
            {"state": state, "attempts_remaining": job.attempts_remaining},
        )
    )
    return steps
