"""Small helpers several suites share."""

from __future__ import annotations

from datetime import UTC, datetime

from payretry.domain.models import Job, JobState
from payretry.domain.money import Money
from payretry.domain.ports import Store


def seen(store: Store, job_id: str) -> Job:
    """The job as an operator looking at it now sees it (what a cancel is fenced on); a job the
    store does not have comes back as a bare placeholder with that id."""
    job = store.get(job_id, with_attempts=False)
    if job is not None:
        return job
    at = datetime(2000, 1, 1, tzinfo=UTC)
    return Job(
        job_id,
        "?",
        "?",
        Money(1, "USD"),
        "?",
        None,
        None,
        JobState.SCHEDULED,
        0,
        0,
        None,
        at,
        at,
        None,
        0,
    )
