"""The reads the HTTP API needs that the job store does not offer (the JobLookups port), on the
in-memory store's own rows: the twin of SqlLookups (payretry/store/requests.py). MemoryStore is
its own JobLookups, as one database answers both in SQL."""

from __future__ import annotations

from payretry.domain.models import ACTIVE_STATES, Job
from payretry.domain.requests import JobPage
from payretry.errors import InvalidInput
from payretry.testing._base import Tables


class LookupsMixin(Tables):
    def jobs_for_user(self, user_id: str, *, after: str | None, limit: int) -> JobPage:
        """A user's jobs, newest first (queue order), `limit` at a time; `after` is an earlier
        page's `next_cursor` (the last seq it showed)."""
        if limit < 1:  # a page of none has no last job to continue after
            raise InvalidInput("must be at least 1", field="limit")
        if after is not None:
            if not (after.isascii() and after.isdigit()) or len(after) > 18:
                raise InvalidInput("is not a cursor from an earlier page", field="cursor")
        below = int(after) if after is not None else None
        with self._tx("jobs_for_user"):
            rows = [
                row
                for seq, row in sorted(self._rows.items(), reverse=True)
                if row.job.user_id == user_id and (below is None or seq < below)
            ][: limit + 1]
            jobs = [row.record() for row in rows[:limit]]
        more = len(rows) > limit
        return JobPage(jobs, str(jobs[-1].seq) if more else None)

    def find_by_session(self, session_id: str) -> Job | None:
        """The job of a Checkout Session (the one it was queued with, or the one it waits on):
        an active job first, else the newest."""
        with self._tx("find_by_session"):
            found = [
                row
                for row in self._rows.values()
                if row.job.refs.checkout_session == session_id
                or (row.job.action is not None and row.job.action.ref == session_id)
            ]
            if not found:
                return None
            best = max(found, key=lambda row: (row.job.state in ACTIVE_STATES, row.seq))
            return best.record()

    def ping(self) -> None:
        """Answers unless a failure was injected (`store.fail("ping")`): StoreError."""
        with self._tx("ping"):
            return None
