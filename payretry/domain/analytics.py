"""The store port behind the pages and `payretry report`: the daily rollups, a job search with
filters and pages, the last hour's throughput, and the numbers of the two distribution metrics
(attempt durations, retries per user). Pure records and a protocol."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Protocol

from payretry.domain.models import Job, JobState
from payretry.domain.rollups import DURATION_BUCKETS, INF, Rollup, format_bound

# `user_retry_frequency`: retries (attempts) per user over this window, and its buckets.
USER_WINDOW = timedelta(hours=24)
USER_BUCKETS = (1, 2, 3, 5, 10, 20, 50)


@dataclass(frozen=True, slots=True)
class JobFilter:
    """What the dashboard's job list filters on; None: any."""

    state: JobState | None = None
    user_id: str | None = None
    code: str | None = None  # the error code or the decline code the job was queued after
    currency: str | None = None
    min_minor: int | None = None  # amount range, in minor units of `currency`
    max_minor: int | None = None


@dataclass(frozen=True, slots=True)
class Histogram:
    """A histogram as Prometheus has it: counts per bucket (`le` -> n, not cumulative; `+Inf`
    last), their sum."""

    counts: Mapping[str, int] = field(default_factory=dict)
    total: float = 0.0

    @property
    def count(self) -> int:
        return sum(self.counts.values())

    def cumulative(self, bounds: Sequence[str]) -> list[tuple[str, int]]:
        """(le, observations at or below it) for each bound, then `+Inf`."""
        out, running = [], 0
        for le in [*bounds, INF]:
            running += self.counts.get(le, 0)
            out.append((le, running))
        return out

    def quantile(self, q: float, bounds: Sequence[float]) -> float | None:
        """The upper bound of the bucket holding quantile `q` (None when empty or beyond the
        last bound)."""
        total = self.count
        if not total:
            return None
        running = 0
        for bound in bounds:
            running += self.counts.get(format_bound(bound), 0)
            if running >= q * total:
                return bound
        return None


def duration_bounds() -> list[str]:
    return [format_bound(b) for b in DURATION_BUCKETS]


@dataclass(frozen=True, slots=True)
class RetryFrequency:
    """`user_retry_frequency`: users by how many retries each had in the window."""

    users: Mapping[int, int] = field(default_factory=dict)  # retries -> users with that many
    window: timedelta = USER_WINDOW

    def histogram(self) -> list[tuple[str, int]]:
        """(le, users with at most that many retries), then `+Inf` (every user)."""
        out = []
        for bound in USER_BUCKETS:
            out.append((str(bound), sum(n for r, n in self.users.items() if r <= bound)))
        out.append((INF, sum(self.users.values())))
        return out

    @property
    def total(self) -> int:
        return sum(r * n for r, n in self.users.items())

    @property
    def count(self) -> int:
        return sum(self.users.values())

    @property
    def most(self) -> int:
        return max(self.users, default=0)


class AnalyticsStore(Protocol):
    def rollups(self, since: date | None = None) -> list[Rollup]:
        """Every rollup of `since` (a UTC day) and after, in (day, metric, key, currency)
        order; all of them when None."""
        ...

    def search_jobs(
        self, where: JobFilter, *, before_seq: int | None = None, limit: int = 50
    ) -> list[Job]:
        """Jobs matching `where`, newest first, after the page ending at `before_seq`; without
        their attempts."""
        ...

    def throughput(self, since: datetime) -> dict[str, int]:
        """Attempts that ended since `since`, by outcome (succeeded, failed, awaiting_payer)."""
        ...

    def processing_times(self) -> dict[tuple[str, str], Histogram]:
        """`retry_processing_time`: attempt durations by (processor, outcome), from the
        rollups (so they survive purge)."""
        ...

    def retry_frequency(self, now: datetime, window: timedelta = USER_WINDOW) -> RetryFrequency:
        """`user_retry_frequency`: attempts started in (now - window, now], counted per user,
        as users per count."""
        ...
