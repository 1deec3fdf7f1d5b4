"""Read models: the JSON shape of each object an edge shows (a job, the stats, the outbox and
its sinks, a job's events). The CLI prints them under --json (and renders tables from them);
the HTTP API returns them. One shape per object, built here."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from payretry.domain.card_checks import job_card
from payretry.domain.durations import iso
from payretry.domain.events import Event
from payretry.domain.models import Job
from payretry.domain.money import Money
from payretry.domain.outbox import Cursor, EventStore, SinkState
from payretry.domain.ports import Stats


def to_second(value: datetime | None) -> str | None:
    """A time for people: ISO 8601 UTC to the second."""
    return iso(value.replace(microsecond=0)) if value is not None else None


def job_dict(job: Job) -> dict[str, Any]:
    return {
        "job_id": job.id,
        "transaction_id": job.transaction_id,
        "user_id": job.user_id,
        "state": job.state.value,
        "amount_minor": job.money.amount_minor,
        "amount": job.money.major(),
        "currency": job.money.currency,
        "error_code": job.error_code,
        "decline_code": job.decline_code,
        "error_message": job.error_message,
        "attempt_count": job.attempt_count,
        "max_attempts": job.max_attempts,
        "attempts_remaining": job.attempts_remaining,
        "retry_available": job.retry_available,
        "next_retry_at": iso(job.next_retry_at),
        "expires_at": iso(job.expires_at),
        "created_at": iso(job.created_at),
        "updated_at": iso(job.updated_at),
        "priority": job.priority,
        "reason": job.reason,
        "policy_row": job.policy_code,
        "network_rule": job.network_rule,
        "card_network": job.card_network,
        "card_fingerprint": job.card_fingerprint,
        "card_key": card_key_text(job),
        **job.refs.as_dict(),
        "customer_action": (
            {
                "checkout_session": job.action.ref,
                "url": job.action.url,
                "expires_at": iso(job.action.expires_at),
            }
            if job.action
            else None
        ),
        "metadata": dict(job.metadata),
        "attempts": [
            {
                "number": a.number,
                "outcome": a.outcome.value,
                "error_code": a.error_code,
                "decline_code": a.decline_code,
                "message": a.message,
                "started_at": iso(a.started_at),
                "finished_at": iso(a.finished_at),
                "idempotency_key": a.idempotency_key,
                "reference": a.reference,
                "decision": a.decision,
                "next_retry_at": iso(a.next_retry_at),
            }
            for a in job.attempts
        ],
    }


def card_key_text(job: Job) -> str | None:
    """The key of the card ledger the job's attempts count in (`payretry card KEY`)."""
    card = job_card(job)
    return str(card.key) if card is not None else None


def stats_document(stats: Stats) -> dict[str, Any]:
    finished = sum(total for _, total in stats.success_by_attempt.values())
    succeeded = sum(ok for ok, _ in stats.success_by_attempt.values())
    return {
        "total": stats.total,
        "by_state": dict(sorted(stats.by_state.items())),
        "pending_amount_minor": dict(stats.pending_amount_minor),
        "pending_amount": {
            cur: Money(amount, cur).major() for cur, amount in stats.pending_amount_minor.items()
        },
        "by_error_code": dict(stats.by_error_code),
        "attempts": dict(sorted(stats.attempts_by_outcome.items())),
        "success_rate": round(succeeded / finished, 4) if finished else None,
        "success_rate_by_attempt": {
            str(n): round(ok / total, 4) if total else None
            for n, (ok, total) in sorted(stats.success_by_attempt.items())
        },
        "due_now": stats.due_now,
        "due_next_hour": stats.due_next_hour,
        "oldest_due_at": to_second(stats.oldest_due_at),
    }


# -- the outbox --------------------------------------------------------------------------------


def sink_states(store: EventStore, sinks: Sequence[str]) -> list[SinkState]:
    """Where each configured sink has got to (a sink that never ran: the start)."""
    states = store.sink_states()
    return [states.get(name) or SinkState(name) for name in sinks]


def sink_row(store: EventStore, state: SinkState) -> dict[str, Any]:
    """A sink: how far it has got, how many changes (outbox entries) wait and have gone, how
    it last failed."""
    return {
        "sink": state.name,
        "pending": store.count_after(state.cursor),
        "delivered": state.delivered,
        "cursor": {"txid": state.cursor.txid, "seq": state.cursor.seq},
        "failures": state.failures,
        "last_error": state.last_error,
        "retry_at": iso(state.retry_at),
    }


def events_document(store: EventStore, sinks: Sequence[str]) -> dict[str, Any]:
    """The outbox: how many changes it holds, and each configured sink's backlog."""
    return {
        "changes": store.count_after(Cursor()),
        "sinks": [sink_row(store, state) for state in sink_states(store, sinks)],
    }


def event_row(event: Event, sinks: Sequence[SinkState]) -> dict[str, Any]:
    """An event, with the sinks that have taken it and those it still waits for."""
    taken = [(event.txid, event.seq) <= (s.cursor.txid, s.cursor.seq) for s in sinks]
    return {
        **event.as_dict(),
        "seq": event.seq,
        "delivered_to": [s.name for s, ok in zip(sinks, taken, strict=True) if ok],
        "pending_for": [s.name for s, ok in zip(sinks, taken, strict=True) if not ok],
    }


def job_events(store: EventStore, job_id: str, sinks: Sequence[str]) -> list[dict[str, Any]]:
    """A job's events, oldest first, each with the sinks that have (not yet) taken it."""
    states = sink_states(store, sinks)
    entries = store.entries_for_job(job_id)
    return [event_row(event, states) for entry in entries for event in entry.events()]
