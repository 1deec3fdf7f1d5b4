"""The metadata payretry puts on what it creates at Stripe, and reads back: which transaction,
which attempt, which idempotency key (how an unrecorded attempt is found again)."""

from __future__ import annotations

from typing import Any

from payretry.domain.models import Job


def metadata_for(job: Job, number: int, key: str) -> dict[str, str]:
    return {
        **job.metadata,
        "payretry_transaction_id": job.transaction_id,
        "payretry_attempt": str(number),
        "payretry_attempt_key": key,
    }


def metadata_of(obj: Any) -> dict[str, str]:
    found = getattr(obj, "metadata", None)
    return dict(found.to_dict()) if found else {}
