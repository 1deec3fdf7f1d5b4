"""One attempt through the processor, and what surrounds it for processors that talk to a real
service (Stripe): the job's history handed over, customer notifications, attempts whose outcome
is in doubt, credentials refused before anything was sent."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

from payretry.domain.policy import Decision
from payretry.domain.ports import AttemptResult, Claimed, Processor, Store

log = logging.getLogger("payretry")
REASON_LIMIT = 1000  # the job's reason column


@dataclass(frozen=True, slots=True)
class Unsettled:
    """An attempt whose outcome is not known (a connection error, a timeout): it keeps its
    pending row and its lease, which lapses; the rescue returns the job and the same key is
    sent again (Stripe replays the first answer)."""

    claimed: Claimed
    error_code: str
    message: str


def with_history(store: Store, processor: Processor, claimed: Claimed) -> Claimed:
    """The claim returns jobs without their attempts (fast for the simulated processor); a
    processor that resolves earlier unsettled attempts gets them, one indexed read per job."""
    if not getattr(processor, "needs_history", False):
        return claimed
    job = store.get(claimed.job.id)
    if job is None:  # pragma: no cover - the job is leased to us
        return claimed
    return replace(claimed, job=replace(job, lease_token=claimed.lease_token))


def with_notification(decision: Decision, claimed: Claimed, result: AttemptResult) -> Decision:
    """Customer notifications are logged and kept in the job's reason, so `status` shows what
    the customer was asked to do; the change's outbox entry carries them to the customer as a
    user_notification event (domain/events.py)."""
    if not result.notify:
        return decision
    log.info(
        "customer notification: %s",
        result.notify,
        extra={"transaction_id": claimed.job.transaction_id, "attempt": claimed.attempt_number},
    )
    reason = f"{decision.reason}; customer notified: {result.notify}"
    return replace(decision, reason=reason[:REASON_LIMIT])
