"""Keep a batch's leases alive while its attempts run."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from payretry.domain.changes import Claimed
from payretry.domain.ports import Store
from payretry.errors import StoreError
from payretry.ticker import Ticker

log = logging.getLogger("payretry")


class Heartbeat(Ticker):
    """Every lease/3, push the lease of every job still held under this batch's token."""

    def __init__(
        self,
        store: Store,
        claimed: Sequence[Claimed],
        lease_for: timedelta,
        clock: Callable[[], datetime],
    ) -> None:
        super().__init__(max(lease_for.total_seconds() / 3, 0.05), "payretry-heartbeat")
        self.store = store
        self.claimed = list(claimed)
        self.lease_for = lease_for
        self.clock = clock
        self.beats = 0

    def should_start(self) -> bool:
        return bool(self.claimed)

    def tick(self) -> None:
        try:
            self.store.extend_leases(self.claimed, self.clock() + self.lease_for)
            self.beats += 1
        except StoreError as exc:  # the database is away: the leases may lapse; rescue copes
            log.warning("could not extend leases: %s", exc)
