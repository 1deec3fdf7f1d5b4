"""Is retrying happening? For `payretry health` and monitoring checks."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from payretry.domain.durations import format_duration, iso
from payretry.domain.ports import Store

STALE_AFTER_INTERVALS = 3
FORGET_AFTER = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class Health:
    ok: bool
    mode: str  # "serve" or "cron"
    reason: str
    oldest_due_at: datetime | None

    def as_dict(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "mode": self.mode,
            "reason": self.reason,
            "oldest_due_at": iso(self.oldest_due_at),
        }


def _age(now: datetime, then: datetime) -> str:
    return format_duration(timedelta(seconds=max(0, round((now - then).total_seconds()))))


def check_health(store: Store, now: datetime, max_due_age: timedelta) -> Health:
    """Healthy when a `serve` beat within 3 intervals; with no daemon about (cron only), when
    the oldest due job is younger than `max_due_age`. A daemon that stopped beating in the last
    day is unhealthy: it probably died."""
    oldest = store.oldest_due(now)
    workers = store.workers()
    live = [w for w in workers if now - w.beat_at <= STALE_AFTER_INTERVALS * w.interval]
    if live:
        names = ", ".join(w.name for w in live)
        return Health(
            True, "serve", f"serve beat {_age(now, live[0].beat_at)} ago ({names})", oldest
        )
    stale = [w for w in workers if now - w.beat_at <= FORGET_AFTER]
    if stale:
        w = stale[0]
        return Health(
            False,
            "serve",
            f"serve {w.name} last beat {_age(now, w.beat_at)} ago, more than "
            f"{STALE_AFTER_INTERVALS} intervals of {format_duration(w.interval)}",
            oldest,
        )
    if oldest is None:
        return Health(True, "cron", "no job is due", None)
    if now - oldest > max_due_age:
        return Health(
            False,
            "cron",
            f"the oldest due job has waited {_age(now, oldest)} (limit "
            f"{format_duration(max_due_age)}); is run-due running?",
            oldest,
        )
    return Health(True, "cron", f"the oldest due job has waited {_age(now, oldest)}", oldest)
