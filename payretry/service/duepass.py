"""What every pass over due jobs does first, whether it then attempts them here (the runner)
or sends them to a queue (the SQS dispatch pass): rescue expired leases, settle customer
actions, abandon jobs whose window closed. And the shape both passes share."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from payretry.domain.outcomes import OnResult, RunReport
from payretry.domain.ports import Store
from payretry.service.customer_actions import CustomerActionSettler
from payretry.service.reporting import Reporter


class DuePass(Protocol):
    """`run-due` and each `serve` tick: one pass over what is due."""

    def run_due(
        self,
        *,
        limit: int | None = None,
        on_result: OnResult | None = None,
        on_batch: Callable[[int], None] | None = None,
    ) -> RunReport: ...


class DueSteps:
    def __init__(
        self,
        store: Store,
        clock: Callable[[], datetime],
        settler: CustomerActionSettler | None = None,
        *,
        max_rescues: int = 3,
    ) -> None:
        self.store = store
        self.clock = clock
        self.settler = settler
        self.max_rescues = max_rescues

    def rescue(self, reporter: Reporter) -> None:
        """Expired leases back to scheduled (the same key is sent again); no attempt counted.
        A job rescued `max_rescues` times for the same attempt is parked instead."""
        rescue = self.store.rescue(self.clock(), max_rescues=self.max_rescues)
        reporter.report.rescued += rescue.rescued
        for job in rescue.parked:
            reporter.parked(job)

    def settle(self, reporter: Reporter) -> None:
        if self.settler is not None:
            self.settler.settle(reporter)

    def abandon(self, reporter: Reporter) -> None:
        for job in self.store.abandon_expired(self.clock()):
            reporter.window_closed(job)

    def prepare(self, reporter: Reporter) -> None:
        """All three, in that order: what a pass does before it takes due jobs."""
        self.rescue(reporter)
        self.settle(reporter)
        self.abandon(reporter)
