"""The AnalyticsStore port in memory: rollups (added by each change, never purged), the job
search, the last hour's throughput and the distribution metrics, as the SQL store has them."""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime, timedelta

from payretry.domain.analytics import USER_WINDOW, Histogram, JobFilter, RetryFrequency
from payretry.domain.models import Job
from payretry.domain.rollups import Metric, Rollup
from payretry.testing._base import Tables, aware


class AnalyticsMixin(Tables):
    def rollups(self, since: date | None = None) -> list[Rollup]:
        with self._tx("rollups"):
            return [r for _, r in sorted(self._rollups.items()) if since is None or r.day >= since]

    def search_jobs(
        self, where: JobFilter, *, before_seq: int | None = None, limit: int = 50
    ) -> list[Job]:
        with self._tx("search_jobs"):
            found = []
            for row in reversed(self._rows.values()):  # newest first
                job = row.job
                if before_seq is not None and job.seq >= before_seq:
                    continue
                if where.state is not None and job.state is not where.state:
                    continue
                if where.user_id is not None and job.user_id != where.user_id:
                    continue
                if where.code is not None and where.code not in (job.error_code, job.decline_code):
                    continue
                if where.currency is not None and job.money.currency != where.currency:
                    continue
                amount = job.money.amount_minor
                if where.min_minor is not None and amount < where.min_minor:
                    continue
                if where.max_minor is not None and amount > where.max_minor:
                    continue
                found.append(job)
                if len(found) >= limit:
                    break
            return found

    def throughput(self, since: datetime) -> dict[str, int]:
        since = aware(since)
        with self._tx("throughput"):
            return dict(
                Counter(
                    a.outcome.value
                    for r in self._rows.values()
                    for a in r.attempts.values()
                    if a.finished_at is not None and a.finished_at >= since
                )
            )

    def processing_times(self) -> dict[tuple[str, str], Histogram]:
        with self._tx("processing_times"):
            return self._processing_times()

    def _processing_times(self) -> dict[tuple[str, str], Histogram]:
        counts: dict[tuple[str, str], Counter[str]] = {}
        totals: dict[tuple[str, str], float] = {}
        for r in self._rollups.values():
            if r.metric is not Metric.DURATION:
                continue
            processor, outcome, le = r.parts()
            counts.setdefault((processor, outcome), Counter())[le] += r.count
            totals[(processor, outcome)] = totals.get((processor, outcome), 0.0) + r.seconds
        return {k: Histogram(dict(counts[k]), totals[k]) for k in sorted(counts)}

    def retry_frequency(self, now: datetime, window: timedelta = USER_WINDOW) -> RetryFrequency:
        with self._tx("retry_frequency"):
            return self._retry_frequency(aware(now), window)

    def _retry_frequency(self, now: datetime, window: timedelta) -> RetryFrequency:
        per_user: Counter[str] = Counter()
        for row in self._rows.values():
            for a in row.attempts.values():
                if now - window < a.started_at <= now:
                    per_user[row.job.user_id] += 1
        return RetryFrequency(dict(Counter(per_user.values())), window)
