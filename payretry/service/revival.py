"""New card data for a job (`payretry update`, `PATCH /api/payments/retry/{id}`): the job that
stopped or waits because its card needed new data is revived with the new payment method."""

from __future__ import annotations

import logging
from datetime import datetime

from payretry.domain.changes import Revived
from payretry.domain.models import Job
from payretry.domain.policy import RetryPolicy
from payretry.domain.ports import Store
from payretry.domain.revival import RevivalStore, revivable
from payretry.domain.validation import validate_id
from payretry.errors import NotFound, Refused

log = logging.getLogger("payretry")


class Revivals:
    def __init__(self, store: Store, revivals: RevivalStore, policy: RetryPolicy) -> None:
        self.store = store
        self.revivals = revivals
        self.policy = policy

    def update(
        self, transaction_id: str, payment_method: str, customer: str | None, now: datetime
    ) -> Job:
        """Revive the transaction's job with `payment_method` (and `customer`): NotFound when
        there is no job, Refused (naming why) when it cannot be revived."""
        pm = validate_id(payment_method, "payment_method")
        cus = validate_id(customer, "customer", required=False)
        assert pm is not None
        job = self.store.find(transaction_id)
        if job is None:
            raise NotFound(f"no retry job for transaction {transaction_id}")
        why = revivable(job, now, self.policy.cap)
        if job.state.final and self.store.active_for([transaction_id]):
            raise Refused(f"another job is active for transaction {transaction_id}")
        revived = Revived(job, pm, cus, None, None, "operator", why, now)
        stored = self.revivals.revive(revived)
        log.info(
            "revived retry with a new payment method", extra={"transaction_id": transaction_id}
        )
        return stored
