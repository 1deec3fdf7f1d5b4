"""Jobs waiting on the customer: each run checks their Checkout Sessions. Completed ->
succeeded; expired -> a failed attempt, then the policy decides (the next retry or the end);
still open -> nothing changes."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from payretry.domain.models import Job
from payretry.domain.ports import AttemptInDoubt, AttemptResult, Claimed, Settlement
from payretry.service.attempts import with_notification

if TYPE_CHECKING:
    from payretry.service.runner import JobResult, Runner, RunReport

log = logging.getLogger("payretry")


def _as_claimed(job: Job) -> Claimed:
    """The awaited attempt, shaped as the runner's decisions expect it."""
    number = job.attempt_count
    return Claimed(job, number, job.idempotency_key(number), job.lease_token or "")


def check_customer_actions(
    runner: Runner, report: RunReport, on_result: Callable[[JobResult], None] | None
) -> int:
    """Check every waiting session once; returns how many were settled."""
    from payretry.service.runner import JobResult, decide

    check: Callable[[Job], AttemptResult | None] | None = getattr(
        runner.processor, "check_action", None
    )
    if check is None:
        return 0
    settled, after = 0, 0
    while not runner.stop.is_set():
        jobs = runner.store.awaiting(after_seq=after, limit=runner.batch_size)
        if not jobs:
            break
        after = jobs[-1].seq
        settlements = []
        for job in jobs:
            try:
                result = check(job)
            except AttemptInDoubt as exc:  # no answer: look again next run
                log.warning(
                    "could not check the checkout session: %s",
                    exc.message,
                    extra={"transaction_id": job.transaction_id},
                )
                continue
            if result is None:
                continue
            now = runner.clock()
            claimed = _as_claimed(job)
            decision = decide(runner.policy, claimed, result, now)
            settlements.append(
                Settlement(job, result, with_notification(decision, claimed, result), now)
            )
        applied = runner.store.settle_awaiting(settlements) if settlements else []
        for settlement, ok in zip(settlements, applied, strict=True):
            if not ok:  # another runner recorded it first
                continue
            settled += 1
            job, decision = settlement.job, settlement.decision
            report.counts[decision.outcome.value] += 1
            log.info(
                "checkout %s",
                decision.outcome.value,
                extra={
                    "transaction_id": job.transaction_id,
                    "attempt": job.attempt_count,
                    "error_code": settlement.result.error_code,
                    "outcome": decision.outcome.value,
                },
            )
            if on_result is not None:
                on_result(
                    JobResult(
                        job.transaction_id,
                        job.id,
                        job.attempt_count,
                        decision.outcome.value,
                        decision.state.value,
                        settlement.result.error_code,
                        settlement.result.decline_code,
                        decision.next_retry_at,
                        decision.reason,
                    )
                )
    return settled
