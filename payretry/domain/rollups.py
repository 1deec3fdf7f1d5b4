"""Daily rollups: the counts recovery analytics are made of, added as jobs finish. Pure.

Every change that ends an attempt or a job says which counts it adds (`rollups` on the values of
domain/changes.py); the store adds them in the same transaction as the change, one grouped
upsert per batch. Rollups are never purged, so `payretry report` and the dashboard's analytics
keep their history after `payretry purge` has removed the jobs themselves.

A rollup is keyed by (UTC day, metric, key, currency) and holds a count, an amount in minor
units and a number of seconds. The metrics and their keys:

- `ended`, key the final state (succeeded, failed, exhausted, abandoned, cancelled), with the
  job's currency and amount: the daily trend, and the amount recovered per currency.
- `code`, key `<code>|<state>`: the same, by the code the job was queued after (`error_code`,
  or `error_code/decline_code`): the recovery rate by error and decline code.
- `attempt`, key `<number>|<outcome>` (succeeded, failed): the success rate of each attempt.
- `recovery`, key the bucket `le` (seconds, or `+Inf`) of the time from the first failure (the
  job was queued after it) to the payment, seconds that time.
- `duration`, key `<processor>|<outcome>|<le>`: how long the processor took over an attempt
  (`retry_processing_time`), seconds that time.

A job's end is counted once, with its final outcome. A job that failed or was blocked because
its card needed new data can be revived (domain/revival.py); the revival takes back the end
counted for it (`unended`: the same `ended` and `code` rows, negated, on the day they were
added), so the job counts again only when it ends for good. Its attempts stay counted: they were
made and they failed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import StrEnum


class Metric(StrEnum):
    ENDED = "ended"
    CODE = "code"
    ATTEMPT = "attempt"
    RECOVERY = "recovery"
    DURATION = "duration"


# Upper bounds (seconds) of the histogram buckets; the last bucket is +Inf.
DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
RECOVERY_BUCKETS = (3600.0, 6 * 3600.0, 86400.0, 3 * 86400.0, 7 * 86400.0)
INF = "+Inf"
SEP = "|"


def bucket(seconds: float, bounds: tuple[float, ...]) -> str:
    """The `le` of the smallest bucket holding `seconds`, as Prometheus writes it."""
    for bound in bounds:
        if seconds <= bound:
            return format_bound(bound)
    return INF


def format_bound(bound: float) -> str:
    return f"{bound:g}" if bound != int(bound) else f"{bound:.1f}"


def code_of(error_code: str, decline_code: str | None) -> str:
    """The code a job is counted under: its error code, with its decline code if any."""
    return f"{error_code}/{decline_code}" if decline_code else error_code


@dataclass(frozen=True, slots=True)
class Rollup:
    day: date
    metric: Metric
    key: str
    currency: str = ""
    count: int = 1
    amount_minor: int = 0
    seconds: float = 0.0

    @property
    def identity(self) -> tuple[date, str, str, str]:
        return (self.day, self.metric.value, self.key, self.currency)

    def parts(self) -> list[str]:
        return self.key.split(SEP)


def merge(rollups: Iterable[Rollup]) -> list[Rollup]:
    """Rollups with the same identity added together (a batch's grouped upsert)."""
    found: dict[tuple[date, str, str, str], Rollup] = {}
    for r in rollups:
        seen = found.get(r.identity)
        if seen is None:
            found[r.identity] = r
        else:
            found[r.identity] = Rollup(
                r.day,
                r.metric,
                r.key,
                r.currency,
                seen.count + r.count,
                seen.amount_minor + r.amount_minor,
                seen.seconds + r.seconds,
            )
    return sorted(found.values(), key=lambda r: r.identity)


def _day(at: datetime) -> date:
    if at.tzinfo is None:
        raise ValueError("naive datetime; payretry uses aware UTC")
    return at.astimezone(UTC).date()


def attempt_ended(
    number: int,
    outcome: str,
    at: datetime,
    *,
    processor: str | None = None,
    started_at: datetime | None = None,
) -> list[Rollup]:
    """An attempt ended (`outcome`: succeeded, failed, or awaiting_payer for a Checkout
    Session sent); with its processor and start, how long the processor took."""
    day = _day(at)
    found: list[Rollup] = []
    if outcome in ("succeeded", "failed"):
        found.append(Rollup(day, Metric.ATTEMPT, f"{number}{SEP}{outcome}"))
    if processor and started_at is not None:
        took = max(0.0, (at - started_at).total_seconds())
        le = bucket(took, DURATION_BUCKETS)
        key = SEP.join((processor, outcome, le))
        found.append(Rollup(day, Metric.DURATION, key, seconds=took))
    return found


def job_ended(
    state: str,
    at: datetime,
    *,
    currency: str,
    amount_minor: int,
    error_code: str,
    decline_code: str | None,
    first_failure_at: datetime,
) -> list[Rollup]:
    """A job reached the final `state` at `at`."""
    day = _day(at)
    code = f"{code_of(error_code, decline_code)}{SEP}{state}"
    found = [
        Rollup(day, Metric.ENDED, state, currency, 1, amount_minor),
        Rollup(day, Metric.CODE, code, currency, 1, amount_minor),
    ]
    if state == "succeeded":
        took = max(0.0, (at - first_failure_at).total_seconds())
        found.append(Rollup(day, Metric.RECOVERY, bucket(took, RECOVERY_BUCKETS), seconds=took))
    return found


def unended(
    state: str,
    at: datetime,
    *,
    currency: str,
    amount_minor: int,
    error_code: str,
    decline_code: str | None,
) -> list[Rollup]:
    """The end counted when a job reached `state` at `at`, taken back (a revival): the
    `ended` and `code` counts negated. Only for an end that is never a recovery (failed,
    blocked): a succeeded job is never revived."""
    if state == "succeeded":
        raise ValueError("a succeeded job's end is never taken back")
    day = _day(at)
    code = f"{code_of(error_code, decline_code)}{SEP}{state}"
    return [
        Rollup(day, Metric.ENDED, state, currency, -1, -amount_minor),
        Rollup(day, Metric.CODE, code, currency, -1, -amount_minor),
    ]
