"""A transaction's job, or NotFound: what `status` answers, from whichever reader holds the
jobs (the store, or a lighter reader of the same database)."""

from __future__ import annotations

from payretry.domain.models import Job
from payretry.domain.ports import FindsJobs
from payretry.errors import NotFound


def job_status(jobs: FindsJobs, transaction_id: str) -> Job:
    job = jobs.find(transaction_id)
    if job is None:
        raise NotFound(f"no retry job for transaction {transaction_id}")
    return job
