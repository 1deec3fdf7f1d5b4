"""Reviving a job when the card changes. Pure.

A job that stopped, or waits, because the card needed new data (`expired_card`,
`confirm_card_data`, `new_account_information_available`, or a Mastercard MAC 01 block) is
revived when the customer gives a new payment method (Stripe's card updater, a new default
payment method, a newly attached one, or an operator's `payretry update`): a new attempt at once,
with the new payment method, counted under the same caps, window and card-network rules.

This is the one way a final job changes (models.REVIVABLE_FROM): only for those reasons, only
while attempts are left and the window is open. `revivable` says why a job may be revived, or
raises Refused saying why not.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from payretry.domain.changes import Revived
from payretry.domain.durations import iso
from payretry.domain.models import REVIVABLE_FROM, Job, JobState
from payretry.errors import Refused

# The codes that mean "the card needs new data", as error or decline codes.
CARD_DATA_CODES = frozenset(
    {"expired_card", "confirm_card_data", "new_account_information_available"}
)
# The card-network rule that blocks a job until new card data comes (network_rules._hard).
NEW_CARD_RULES = frozenset({"mastercard_mac_01"})


def card_data_code(job: Job) -> str | None:
    """The code of the job's last failure when it says the card needs new data, else None: its
    last attempt's (once one was made and failed), else the failure it was queued after."""
    failed = [a for a in job.attempts if a.error_code]
    codes = (
        (failed[-1].decline_code, failed[-1].error_code)
        if failed
        else (job.decline_code, job.error_code)
    )
    return next((code for code in codes if code in CARD_DATA_CODES), None)


def revivable(job: Job, now: datetime, cap: int) -> str:
    """Why `job` may be revived with new card data now (a sentence), or Refused naming why not.
    `cap`: the global cap on attempts ([retry] max_attempts)."""
    txn = job.transaction_id
    if job.state not in REVIVABLE_FROM:
        raise Refused(
            f"the job for {txn} is {job.state.value}: only a failed, blocked or scheduled job "
            "whose card needed new data can be revived"
        )
    if job.state is JobState.BLOCKED:
        if job.network_rule not in NEW_CARD_RULES:
            raise Refused(
                f"the job for {txn} is blocked by {job.network_rule or 'a card-network rule'}, "
                "which new card data does not lift (only Mastercard MAC 01 does)"
            )
        why = f"blocked by {job.network_rule} (retry only with new card data)"
    else:
        code = card_data_code(job)
        if code is None:
            last = job.attempts[-1] if job.attempts else None
            said = (last.decline_code or last.error_code) if last else job.error_code
            raise Refused(
                f"the job for {txn} is {job.state.value} after {said}, not because the card "
                f"needed new data ({', '.join(sorted(CARD_DATA_CODES))} or MAC 01)"
            )
        why = f"{job.state.value} after {code}"
    limit = min(job.max_attempts, cap) if job.max_attempts else cap
    if job.attempt_count >= limit:
        raise Refused(
            f"the job for {txn} has no attempts left ({job.attempt_count} of {limit} used)"
        )
    if job.expires_at is not None and job.expires_at <= now:
        raise Refused(f"the payment window for {txn} closed at {iso(job.expires_at)}")
    return why


class RevivalStore(Protocol):
    def revive(self, revived: Revived) -> Job:
        """Schedule the job again as `revived` says, fenced by the job as the caller saw it;
        Refused when it changed meanwhile or another job is active for its transaction."""
        ...
