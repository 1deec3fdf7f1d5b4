"""Keep a batch's leases alive while its attempts run."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from types import TracebackType

from payretry.domain.ports import Claimed, Store
from payretry.errors import StoreError

log = logging.getLogger("payretry")


class Heartbeat:
    """Every lease/3, push the lease of every job still held under this batch's token."""

    def __init__(
        self,
        store: Store,
        claimed: Sequence[Claimed],
        lease_for: timedelta,
        clock: Callable[[], datetime],
    ) -> None:
        self.store = store
        self.claimed = list(claimed)
        self.lease_for = lease_for
        self.clock = clock
        self.beats = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="payretry-heartbeat", daemon=True)

    def _run(self) -> None:
        interval = max(self.lease_for.total_seconds() / 3, 0.05)
        while not self._stop.wait(interval):
            try:
                self.store.extend_leases(self.claimed, self.clock() + self.lease_for)
                self.beats += 1
            except StoreError as exc:  # the database is away: the leases may lapse; rescue copes
                log.warning("could not extend leases: %s", exc)

    def __enter__(self) -> Heartbeat:
        if self.claimed:
            self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
