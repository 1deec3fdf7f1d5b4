"""Job ids are printed everywhere (status, logs, idempotency keys, SQS messages): none may
look like a card number, or redaction would hide it and card scanners would flag it."""

from __future__ import annotations

import re

from payretry.domain.validation import looks_like_card, unsafe_to_show
from payretry.service.operations import new_job_id


def test_job_ids_never_hold_twelve_digits_in_a_row() -> None:
    ids = [new_job_id() for _ in range(5000)]
    assert len(set(ids)) == len(ids)
    for job_id in ids:
        assert re.fullmatch(r"[0-9a-f]{32}", job_id)
        assert not looks_like_card(job_id) and not unsafe_to_show(job_id)
        assert not unsafe_to_show(f"payretry:{job_id}:1")
