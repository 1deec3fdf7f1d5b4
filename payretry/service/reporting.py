"""The one place an outcome is counted, logged and handed on: every pass (run-due, serve, the
SQS worker, a retry now) reports each job through a Reporter into its RunReport."""

from __future__ import annotations

import logging

from payretry.domain.changes import Finish, Held, Settlement, Unsettled
from payretry.domain.models import Job
from payretry.domain.outcomes import IN_DOUBT, PARKED, JobResult, OnResult, RunReport

log = logging.getLogger("payretry")


class Reporter:
    def __init__(self, report: RunReport, on_result: OnResult | None = None) -> None:
        self.report = report
        self.on_result = on_result

    def _emit(self, result: JobResult, message: str, *args: object, warn: bool = False) -> None:
        extra = {
            "transaction_id": result.transaction_id,
            "attempt": result.attempt,
            "error_code": result.error_code,
            "outcome": result.outcome,
        }
        (log.warning if warn else log.info)(message, *args, extra=extra)
        if self.on_result is not None:
            self.on_result(result)

    def finished(self, finish: Finish, applied: bool) -> None:
        """An attempt's outcome, recorded (`applied`) or discarded because the lease was lost."""
        result = JobResult.of_finish(finish, applied)
        self.report.counts[result.outcome] += 1
        if applied:
            self.report.counts["attempted"] += 1
            if finish.result.notify:
                log.info(
                    "customer notification: %s",
                    finish.result.notify,
                    extra={"transaction_id": result.transaction_id, "attempt": result.attempt},
                )
            self._emit(result, "attempt %s", result.outcome)
        else:
            self._emit(
                result, "lease lost before the outcome was recorded; result discarded", warn=True
            )

    def in_doubt(self, item: Unsettled) -> None:
        self.report.counts[IN_DOUBT] += 1
        self._emit(
            JobResult.of_unsettled(item),
            "outcome unknown (%s); the same idempotency key is sent again once the lease lapses",
            item.message,
            warn=True,
        )

    def settled(self, settlement: Settlement) -> None:
        """A customer action (checkout) ended and the policy decided what follows."""
        result = JobResult.of_settlement(settlement)
        self.report.counts[result.outcome] += 1
        self._emit(result, "checkout %s", result.outcome)

    def parked(self, job: Job) -> None:
        self.report.counts[PARKED] += 1
        self._emit(JobResult.of_parked(job), "poison job: %s", job.reason, warn=True)

    def held(self, held: Held) -> None:
        """A claimed job the card-network rules kept from its attempt (postponed, blocked)."""
        result = JobResult.of_held(held)
        self.report.counts[result.outcome] += 1
        self._emit(result, "not attempted: %s", held.job.reason)

    def window_closed(self, job: Job) -> None:
        self.report.counts["abandoned"] += 1
        self._emit(JobResult.of_window_closed(job), "payment window closed; abandoned")

    def dispatched(self, result: JobResult, delay_seconds: int, queue: str) -> None:
        self._emit(result, "sent to %s, delay %ds", queue, delay_seconds)
