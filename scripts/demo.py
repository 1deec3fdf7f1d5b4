"""Run payretry's retry loop over the demo database through simulated time.

Used by scripts/demo.sh: the jobs were queued with the real CLI; this drives the same Runner
that `payretry run-due` uses, with a clock that jumps to each next due time instead of waiting.
"""

from __future__ import annotations

import sys
from datetime import datetime, timedelta

from payretry.clock import utcnow
from payretry.config import load_settings
from payretry.domain.durations import format_duration
from payretry.domain.models import JobState
from payretry.domain.outcomes import JobResult
from payretry.processors.simulated import SimulatedProcessor
from payretry.service.runner import Runner
from payretry.store.sql import open_store


class SimulatedClock:
    def __init__(self, start: datetime) -> None:
        self.start = self.now = start

    def __call__(self) -> datetime:
        return self.now

    def offset(self, when: datetime | None = None) -> str:
        delta = (when or self.now) - self.start
        return "+" + format_duration(timedelta(seconds=round(delta.total_seconds())))


def main(url: str) -> None:
    settings = load_settings(flags={"database.url": url})
    store = open_store(url)
    queued = store.list_jobs(limit=10_000)
    clock = SimulatedClock(min((j.created_at for j in queued), default=utcnow()))
    processor = SimulatedProcessor(success_rate=0.5, seed=7)
    runner = Runner(store, settings.policy(), processor, clock=clock)

    def show(result: JobResult) -> None:
        error = result.error_code or ""
        if result.decline_code:
            error += f"/{result.decline_code}"
        line = f"{clock.offset():>8}  {result.transaction_id:<14} attempt {result.attempt}  "
        line += f"{result.outcome:<11}"
        if error:
            line += f" {error}"
        if result.next_retry_at:
            line += f"  -> next try at {clock.offset(result.next_retry_at)}"
        elif result.reason and result.outcome != "succeeded":
            line += f"  ({result.reason})"
        print(line)

    print(f"{'time':>8}  {'transaction':<14} what happened")
    for _ in range(100):
        runner.run_due(on_result=show)
        waiting = store.list_jobs(state=JobState.SCHEDULED, limit=10_000)
        upcoming = [j.next_retry_at for j in waiting if j.next_retry_at is not None]
        if not upcoming:
            break
        clock.now = max(clock.now, min(upcoming))
    print(f"Simulated {clock.offset()} of retries; nothing is left to retry.")
    store.close()


if __name__ == "__main__":
    main(sys.argv[1])
