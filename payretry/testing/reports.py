"""Counting and housekeeping in memory: the numbers behind `stats`, `health` and the metrics
(computed as the SQL store's reports compute them), purging finished jobs, worker beats."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta

from payretry.domain.analytics import USER_WINDOW
from payretry.domain.models import ACTIVE_STATES, AttemptOutcome, JobState
from payretry.domain.outbox import Telemetry
from payretry.domain.ports import Stats, WorkerBeat
from payretry.testing._base import aware
from payretry.testing.analytics import AnalyticsMixin
from payretry.testing.events import EventsMixin

_FINISHED = (AttemptOutcome.SUCCEEDED, AttemptOutcome.FAILED)
# (attempt number, outcome, error code, decline code) -> how many attempts
Groups = Counter[tuple[int, AttemptOutcome, str | None, str | None]]


class ReportsMixin(EventsMixin, AnalyticsMixin):
    def _by_state(self) -> dict[str, int]:
        return dict(Counter(r.job.state.value for r in self._rows.values()))

    def _attempt_groups(self) -> Groups:
        return Counter(
            (a.number, a.outcome, a.error_code, a.decline_code)
            for r in self._rows.values()
            for a in r.attempts.values()
        )

    def _due_since(self, now: datetime) -> tuple[int, datetime | None]:
        """How many scheduled jobs are due at `now`, and since when the oldest has waited."""
        due = [
            r.job.next_retry_at
            for r in self._rows.values()
            if r.job.state is JobState.SCHEDULED
            and r.job.next_retry_at is not None
            and r.job.next_retry_at <= now
        ]
        return len(due), min(due, default=None)

    def stats(self, now: datetime) -> Stats:
        now = aware(now)
        with self._tx("stats"):
            jobs = [r.job for r in self._rows.values()]
            by_state = self._by_state()
            pending: Counter[str] = Counter()
            for job in jobs:
                if job.state in ACTIVE_STATES:
                    pending[job.money.currency] += job.money.amount_minor
            reasons = Counter(job.error_code for job in jobs)
            groups = self._attempt_groups()
            due_now, oldest = self._due_since(now)
            hour = now + timedelta(hours=1)
            due_hour = sum(
                1
                for job in jobs
                if job.state is JobState.SCHEDULED
                and job.next_retry_at is not None
                and now < job.next_retry_at <= hour
            )
        outcomes: Counter[str] = Counter()
        per_attempt: dict[int, list[int]] = {}
        for (number, outcome, error_code, _), n in groups.items():
            outcomes[outcome.value] += n
            if outcome is AttemptOutcome.FAILED:
                reasons[error_code or "unknown"] += n
            if outcome in _FINISHED:
                ok_total = per_attempt.setdefault(number, [0, 0])
                ok_total[1] += n
                if outcome is AttemptOutcome.SUCCEEDED:
                    ok_total[0] += n
        return Stats(
            total=len(jobs),
            by_state=by_state,
            pending_amount_minor=dict(sorted(pending.items())),
            by_error_code=dict(sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))),
            attempts_by_outcome=dict(outcomes),
            success_by_attempt={n: (ok, total) for n, (ok, total) in sorted(per_attempt.items())},
            due_now=due_now,
            due_next_hour=due_hour,
            oldest_due_at=oldest,
        )

    def oldest_due(self, now: datetime) -> datetime | None:
        with self._tx("oldest_due"):
            return self._due_since(aware(now))[1]

    def telemetry(self, now: datetime, sinks: Sequence[str] = ()) -> Telemetry:
        now = aware(now)
        with self._tx("telemetry"):
            by_state = self._by_state()
            groups = self._attempt_groups()
            due_now, oldest = self._due_since(now)
            pending = self._pending(sinks)
            blocked: Counter[str] = Counter(
                r.job.network_rule or "unknown"
                for r in self._rows.values()
                if r.job.state is JobState.BLOCKED
            )
            processing = self._processing_times()
            frequency = self._retry_frequency(now, USER_WINDOW)
        attempts: Counter[int] = Counter()
        failures: Counter[tuple[str, int]] = Counter()
        succeeded = finished = 0
        for (number, outcome, error_code, decline_code), n in groups.items():
            attempts[number] += n
            if outcome is AttemptOutcome.SUCCEEDED:
                succeeded += n
                finished += n
            elif outcome is AttemptOutcome.FAILED:
                finished += n
                failures[(decline_code or error_code or "unknown", number)] += n
        return Telemetry(
            at=now,
            by_state=by_state,
            attempts_by_number=dict(sorted(attempts.items())),
            failures=dict(sorted(failures.items())),
            succeeded=succeeded,
            finished=finished,
            queue_size=sum(by_state.get(state.value, 0) for state in ACTIVE_STATES),
            due_now=due_now,
            oldest_due_at=oldest,
            pending_events=pending,
            blocked_by_rule=dict(sorted(blocked.items())),
            processing=processing,
            retry_frequency=frequency,
        )

    # -- housekeeping --------------------------------------------------------------------------

    def purge(self, before: datetime, *, dry_run: bool = False) -> int:
        """Remove final jobs (and their attempts) last changed before `before`."""
        before = aware(before)
        with self._tx("purge"):
            old = [
                r for r in self._rows.values() if r.job.state.final and r.job.updated_at < before
            ]
            if not dry_run:
                for row in old:
                    self._drop(row)
                # Stripe webhook records as old, as the SQL purge removes them.
                for event_id in [e for e, r in self._webhooks.items() if r.received_at < before]:
                    del self._webhooks[event_id]
            return len(old)

    def beat(self, name: str, kind: str, interval: timedelta, now: datetime) -> None:
        now = aware(now)
        with self._tx("beat"):
            known = self._workers.get(name)
            if known is None:
                self._workers[name] = WorkerBeat(name, kind, now, now, interval)
            else:
                self._workers[name] = WorkerBeat(name, known.kind, known.started_at, now, interval)

    def forget_worker(self, name: str) -> None:
        with self._tx("forget_worker"):
            self._workers.pop(name, None)

    def workers(self) -> list[WorkerBeat]:
        with self._tx("workers"):
            return sorted(self._workers.values(), key=lambda w: w.beat_at, reverse=True)
