"""A job's story in plain sentences: what failed, which policy row applied, why the next retry
is when it is, which card-network rule moved or stopped it, why it stopped. Built from the job,
its attempts, the current policy and the job's outbox entries (what each rule-driven decision
said, with its source)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from payretry.domain.durations import format_duration, iso
from payretry.domain.events import EVICTION_FIELDS, EventType, OutboxEntry
from payretry.domain.models import Attempt, AttemptOutcome, Job
from payretry.domain.policy import RetryPolicy
from payretry.domain.webhooks import WebhookRecord


@dataclass(frozen=True, slots=True)
class Step:
    at: datetime | None
    kind: str  # queued, policy, rule, attempt, decision, window, evicted, state
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


def _rule(data: Mapping[str, Any]) -> str:
    return f"{data.get('rule_reason')} (source: {data.get('rule_source')})"


def _rule_fields(data: Mapping[str, Any]) -> dict[str, Any]:
    return {name: data.get(name) for name in ("rule", "rule_reason", "rule_source")}


def _hold_step(entry: OutboxEntry) -> Step:
    """A claim the card-network rules held: the attempt was not sent."""
    data = entry.data
    if entry.kind is EventType.BLOCKED:
        text = (
            f"At {iso(entry.occurred_at)} attempt {entry.attempt} was not sent and the job is "
            f"blocked: {_rule(data)}."
        )
    else:
        text = f"At {iso(entry.occurred_at)} attempt {entry.attempt} was not sent: {_rule(data)}."
    return Step(
        entry.occurred_at,
        "rule",
        text,
        {
            "attempt": entry.attempt,
            "next_retry_at": data.get("next_retry_at"),
            **_rule_fields(data),
        },
    )


def _revived_step(entry: OutboxEntry) -> Step:
    return Step(
        entry.occurred_at,
        "revived",
        f"At {iso(entry.occurred_at)} the job was {entry.data.get('reason')}.",
        {"attempt": entry.attempt, "revived_by": entry.data.get("revived_by")},
    )


def _evicted_step(entry: OutboxEntry) -> Step:
    """A full queue dropped the job for one of higher priority (domain/bound.py)."""
    data = entry.data
    text = (
        f"At {iso(entry.occurred_at)} the queue was full ([queue] max_active = "
        f"{data.get('max_active')}): job {data.get('evicted_by')} (transaction "
        f"{data.get('evicted_by_transaction')}, priority {data.get('evicted_by_priority')}) "
        f"took its place, as the lowest-priority scheduled job (priority "
        f"{data.get('priority')}) with the latest next retry; attempt {entry.attempt} will "
        "never be made."
    )
    return Step(
        entry.occurred_at,
        "evicted",
        text,
        {"attempt": entry.attempt, **{name: data.get(name) for name in EVICTION_FIELDS}},
    )


def _attempt_steps(
    job: Job, attempt: Attempt, policy: RetryPolicy, said: Mapping[str, Any] | None = None
) -> list[Step]:
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
    row = policy.lookup(attempt.error_code, attempt.decline_code).row
    when = attempt.finished_at
    decision = attempt.decision
    moved = said is not None and said.get("rule")
    extra: dict[str, Any] = _rule_fields(said) if said is not None and moved else {}
    if decision == "rescheduled" and moved and attempt.next_retry_at is not None:
        text = (
            f"Under {rule}, attempt {attempt.number + 1} would have waited "
            f"{format_duration(row.delay_before(attempt.number + 1))}; a card-network rule "
            f"moved it: {_rule(said or {})}."
        )
    elif decision == "blocked":
        why = f": {_rule(said or {})}" if moved else ""
        text = (
            f"Under {rule}, attempt {attempt.number + 1} would have followed, but a "
            f"card-network rule stops the job{why}."
        )
    elif decision == "rescheduled" and attempt.next_retry_at is not None and when is not None:
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
                "policy_row": row.code,
                "next_retry_at": iso(attempt.next_retry_at),
                **extra,
            },
        )
    )
    return steps


def webhook_ids(entries: Sequence[OutboxEntry]) -> list[str]:
    """The Stripe events named by the job's entries (a revival, a payment made elsewhere)."""
    found = (e.data.get("revived_by") or e.data.get("settled_by") for e in entries)
    return sorted({str(i) for i in found if i and i != "operator"})


def _webhook_step(record: WebhookRecord) -> Step:
    return Step(
        record.received_at,
        "webhook",
        f"Stripe event {record.event_id} ({record.type}) at {iso(record.received_at)}: "
        f"{record.effect}.",
        {"event_id": record.event_id, "type": record.type, "applied": record.applied},
    )


def explain(
    job: Job,
    policy: RetryPolicy,
    entries: Sequence[OutboxEntry] = (),
    webhooks: Sequence[WebhookRecord] = (),
) -> list[Step]:
    """The story; `entries` (the job's outbox entries) add what each card-network rule said
    when it moved or stopped a retry; `webhooks`, what each Stripe event did to the job."""
    failed = {e.attempt: e.data for e in entries if e.kind is EventType.FAILED}
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
    queued = next((e for e in entries if e.kind is EventType.SCHEDULED), None)
    if queued is not None and queued.data.get("rule"):
        steps.append(
            Step(
                job.created_at,
                "rule",
                f"Its first retry was moved by a card-network rule: {_rule(queued.data)}.",
                {"next_retry_at": queued.data.get("next_retry_at"), **_rule_fields(queued.data)},
            )
        )
    if job.expires_at is not None:
        steps.append(
            Step(
                job.expires_at,
                "window",
                f"Its payment window ends at {iso(job.expires_at)}; no retry is made after it.",
                {"expires_at": iso(job.expires_at)},
            )
        )
    story: list[Step] = []
    for attempt in job.attempts:
        story.extend(_attempt_steps(job, attempt, policy, failed.get(attempt.number)))
    holds = [_hold_step(e) for e in entries if e.kind in (EventType.POSTPONED, EventType.BLOCKED)]
    holds += [_revived_step(e) for e in entries if e.kind is EventType.REVIVED]
    holds += [_webhook_step(record) for record in webhooks]
    holds += [_evicted_step(e) for e in entries if e.kind is EventType.EVICTED]
    if holds:  # claims the rules held, evictions, revivals, webhooks: in time among the attempts
        story = sorted([*story, *holds], key=lambda s: s.at or job.created_at)
    steps.extend(story)
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


class StorySources(Protocol):
    def entries_for_job(self, job_id: str) -> list[OutboxEntry]: ...

    def webhooks_for_job(
        self, job_id: str, event_ids: Sequence[str] = ()
    ) -> list[WebhookRecord]: ...


def job_story(store: StorySources, job: Job, policy: RetryPolicy) -> list[Step]:
    """The whole story, as `payretry explain`, `?explain=true` and the dashboard tell it: the
    job's outbox entries (rules, evictions, revivals) and the webhooks that touched it."""
    entries = store.entries_for_job(job.id)
    return explain(job, policy, entries, store.webhooks_for_job(job.id, webhook_ids(entries)))
