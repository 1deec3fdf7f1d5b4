"""The outbox and its sinks, in memory: entries in write order (each change's entry is written
with the change, under the store's lock, so every entry is settled the moment it exists), and
per sink a cursor, a lease, a failure count and a next try, fenced like the SQL store's."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from payretry.domain.events import OutboxEntry
from payretry.domain.outbox import Cursor, SinkState
from payretry.testing._base import Tables, aware


def _after(entry: OutboxEntry, cursor: Cursor) -> bool:
    return (entry.txid, entry.seq) > (cursor.txid, cursor.seq)


class EventsMixin(Tables):
    # -- reading -------------------------------------------------------------------------------

    def entries_for_job(self, job_id: str) -> list[OutboxEntry]:
        with self._tx("entries_for_job"):
            return [e for e in self._outbox.values() if e.job_id == job_id]

    def recent_entries(self, *, limit: int) -> list[OutboxEntry]:
        """The newest entries, newest first."""
        with self._tx("recent_entries"):
            return list(reversed(self._outbox.values()))[: max(0, limit)]

    def entries_after(
        self, cursor: Cursor, limit: int, *, settled: bool = True
    ) -> list[OutboxEntry]:
        """Entries after `cursor` in delivery order. Every entry here is settled: it was
        written under the lock together with its change."""
        with self._tx("entries_after"):
            found: list[OutboxEntry] = []
            for entry in self._outbox.values():
                if len(found) >= limit:
                    break
                if _after(entry, cursor):
                    found.append(entry)
            return found

    def count_after(self, cursor: Cursor) -> int:
        with self._tx("count_after"):
            return self._count_after(cursor)

    def _count_after(self, cursor: Cursor) -> int:
        return sum(1 for e in self._outbox.values() if _after(e, cursor))

    def _pending(self, sinks: Sequence[str]) -> dict[str, int]:
        """How many changes each named sink has yet to take (a sink never run: all of them)."""
        return {
            name: self._count_after(self._sinks[name].cursor if name in self._sinks else Cursor())
            for name in sinks
        }

    # -- sinks ---------------------------------------------------------------------------------

    def sink_states(self) -> dict[str, SinkState]:
        with self._tx("sink_states"):
            return {name: self._sinks[name] for name in sorted(self._sinks)}

    def _fenced(self, state: SinkState) -> SinkState | None:
        """The sink's row while `state`'s lease token still holds it."""
        current = self._sinks.get(state.name)
        return current if current is not None and current.lease_token == state.lease_token else None

    def lease_sink(self, name: str, now: datetime, lease_for: timedelta) -> SinkState | None:
        """Take the sink for delivery, unless another process holds it or it is backing off."""
        now = aware(now)
        with self._tx("lease_sink"):
            state = self._sinks.setdefault(name, SinkState(name, updated_at=now))
            if state.lease_expires_at is not None and state.lease_expires_at > now:
                return None
            if state.retry_at is not None and state.retry_at > now:
                return None
            state = self._sinks[name] = replace(
                state, lease_token=uuid.uuid4().hex, lease_expires_at=now + lease_for
            )
            return state

    def advance_sink(
        self, state: SinkState, cursor: Cursor, count: int, now: datetime, lease_until: datetime
    ) -> bool:
        """Record a delivered batch (fenced by the lease); False when the lease was lost."""
        with self._tx("advance_sink"):
            current = self._fenced(state)
            if current is None:
                return False
            self._sinks[state.name] = replace(
                current,
                cursor=cursor,
                delivered=current.delivered + count,
                failures=0,
                last_error=None,
                retry_at=None,
                lease_expires_at=aware(lease_until),
                updated_at=aware(now),
            )
            return True

    def sink_failed(self, state: SinkState, error: str, retry_at: datetime, now: datetime) -> None:
        with self._tx("sink_failed"):
            current = self._fenced(state)
            if current is not None:
                self._sinks[state.name] = replace(
                    current,
                    failures=current.failures + 1,
                    last_error=error[:500],
                    retry_at=aware(retry_at),
                    lease_token=None,
                    lease_expires_at=None,
                    updated_at=aware(now),
                )

    def release_sink(self, state: SinkState, now: datetime) -> None:
        with self._tx("release_sink"):
            current = self._fenced(state)
            if current is not None:
                self._sinks[state.name] = replace(
                    current, lease_token=None, lease_expires_at=None, updated_at=aware(now)
                )

    # -- housekeeping --------------------------------------------------------------------------

    def purge_events(self, before: datetime, sinks: Sequence[str]) -> int:
        """Remove entries older than `before` that every sink named has taken (all old ones
        when no sink is named)."""
        before = aware(before)
        with self._tx("purge_events"):
            cursors = [self._sinks[name].cursor for name in set(sinks) if name in self._sinks]
            if len(cursors) < len(set(sinks)):
                cursors.append(Cursor())  # a named sink that has taken nothing yet
            horizon = min(cursors) if cursors else None
            old = [
                seq
                for seq, e in self._outbox.items()
                if e.occurred_at < before and (horizon is None or not _after(e, horizon))
            ]
            for seq in old:
                del self._outbox[seq]
            return len(old)
