"""Events: what each state change tells the world. Pure.

Every state change writes one outbox entry in the same transaction as the change: its head
event (`kind`) and what its follow-on events need. `entry.events()` renders them the same way
every time: a queued job is `retry_scheduled` + `user_notification` (retry planned at T); a
failed attempt that will be retried is `retry_failed` + `retry_scheduled` for the next attempt +
`user_notification`; an attempt that ends the job is `retry_failed` + `retry_exhausted` or
`retry_abandoned` + `user_notification` (failed for good). One row per change keeps the write
path lean (a bulk queue of 100,000 jobs writes 100,000 entries, not 200,000 events).

Event ids are stable, `<job id>:<attempt>:<type>` (a notification adds its kind), so receivers
drop duplicates. `attempt` is the attempt the event is about: the one scheduled, started,
succeeded or failed; the last one made when a job ends after an attempt; the one that will now
never be made when a job is cancelled or its payment window closes while it waits.

No PII and no secrets: the user id is opaque by contract; amounts, codes and times are not
personal; processor messages (free text) are left out.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from payretry.domain.durations import iso
from payretry.domain.models import Job, JobState, attempt_key
from payretry.domain.money import Money
from payretry.domain.network_rules import Verdict
from payretry.domain.policy import Decision, Outcome
from payretry.domain.results import AttemptResult


class EventType(StrEnum):
    SCHEDULED = "retry_scheduled"  # attempt N will be made at next_retry_at
    INITIATED = "retry_initiated"  # attempt N was claimed and is being sent
    SUCCESS = "retry_success"  # attempt N succeeded: the payment went through
    FAILED = "retry_failed"  # attempt N failed (will_retry says whether another follows)
    EXHAUSTED = "retry_exhausted"  # no attempts left
    ABANDONED = "retry_abandoned"  # the payment window closed
    CANCELLED = "retry_cancelled"  # an operator cancelled the job
    PARKED = "retry_parked"  # rescued too often without an outcome: held for an operator
    POSTPONED = "retry_postponed"  # a card-network rule moved attempt N later
    BLOCKED = "retry_blocked"  # a card-network rule stopped the job
    REVIVED = "retry_revived"  # new card data came: attempt N is scheduled again, now
    EVICTED = "retry_evicted"  # a full queue ([queue] max_active) made room for a higher job
    NOTIFICATION = "user_notification"  # a message for the customer


class Notice(StrEnum):
    """Why the customer is told something (the `notification` field of user_notification)."""

    RETRY_PLANNED = "retry_planned"
    ACTION_REQUIRED = "action_required"  # authenticate, or update the card; a retry follows
    CHECKOUT = "checkout"  # complete a Checkout Session at its URL
    FAILED = "failed"  # failed for good: no retry follows


# The analytics events (Segment `track`) and the event types they come from.
ANALYTICS: Mapping[EventType, str] = {
    EventType.INITIATED: "payments.retry.initiated",
    EventType.SUCCESS: "payments.retry.completed",
    EventType.FAILED: "payments.retry.completed",
    EventType.ABANDONED: "payments.retry.abandoned",
}

_COMMON = ("transaction_id", "user_id", "amount_minor", "currency")
# What a rule-driven event says: the rule's id, its sentence, its source.
_RULE = ("rule", "rule_reason", "rule_source")
# What retry_evicted says besides the reason: the evicted job's priority, the bound, and the
# job that took its place (its id, transaction and priority).
EVICTION_FIELDS = (
    "priority",
    "max_active",
    "evicted_by",
    "evicted_by_transaction",
    "evicted_by_priority",
)


@dataclass(frozen=True, slots=True)
class Event:
    id: str
    type: EventType
    job_id: str
    attempt: int
    occurred_at: datetime
    data: Mapping[str, Any] = field(default_factory=dict)  # JSON-ready fields
    seq: int = 0  # of the outbox entry it comes from: delivery order
    txid: int = 0

    @property
    def transaction_id(self) -> str:
        return str(self.data.get("transaction_id", ""))

    def as_dict(self) -> dict[str, Any]:
        """The event as every sink sends it (JSON)."""
        return {
            "id": self.id,
            "type": self.type.value,
            "occurred_at": iso(self.occurred_at),
            "job_id": self.job_id,
            "attempt": self.attempt,
            **self.data,
        }


def _to_second(text: Any) -> str:
    """An ISO time as a customer reads it: to the second."""
    value = str(text)
    dot = value.find(".")
    return value[:dot] + "Z" if dot != -1 and value.endswith("Z") else value


def event_id(
    job_id: str,
    attempt: int,
    kind: EventType,
    notice: Notice | None = None,
    *,
    until: str | None = None,
) -> str:
    """`<job id>:<attempt>:<type>`; a notification adds its kind, a postponement the time it
    moved the attempt to (one attempt may be moved more than once)."""
    base = f"{job_id}:{attempt}:{kind.value}"
    if notice is not None:
        return f"{base}:{notice.value}"
    if kind is EventType.POSTPONED and until:
        return f"{base}:{until.replace('-', '').replace(':', '')}"
    return base


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """One state change of one job, as the outbox stores it: the head event's type and the
    fields its events need (JSON-ready). `seq` and `txid` are set once stored."""

    job_id: str
    attempt: int
    kind: EventType
    occurred_at: datetime
    data: Mapping[str, Any]
    seq: int = 0
    txid: int = 0

    def events(self) -> list[Event]:
        return _RENDER[self.kind](self)

    def _event(
        self,
        kind: EventType,
        state: JobState | str,
        fields: tuple[str, ...] = (),
        *,
        attempt: int | None = None,
        notice: Notice | None = None,
        **extra: Any,
    ) -> Event:
        data = self.data
        out: dict[str, Any] = {name: data.get(name) for name in _COMMON}
        out["state"] = state.value if isinstance(state, JobState) else state
        for name in fields:
            out[name] = data.get(name)
        if notice is not None:
            out["notification"] = notice.value
        out.update(extra)
        number = self.attempt if attempt is None else attempt
        until = str(data.get("next_retry_at") or "") if kind is EventType.POSTPONED else None
        return Event(
            event_id(self.job_id, number, kind, notice, until=until),
            kind,
            self.job_id,
            number,
            self.occurred_at,
            out,
            self.seq,
            self.txid,
        )

    def _money(self) -> Money:
        return Money(int(self.data.get("amount_minor") or 0), str(self.data.get("currency")))

    def _planned(self, attempt: int) -> list[Event]:
        when = _to_second(self.data.get("next_retry_at"))
        state = JobState.SCHEDULED
        fields = ("next_retry_at", "max_attempts", "policy_row")
        notify = self.data.get("notify")
        if attempt > self.attempt and notify:
            # A failed attempt the customer can help with: one note saying what to do and
            # when the next try is.
            note = self._event(
                EventType.NOTIFICATION,
                state,
                ("next_retry_at",),
                notice=Notice.ACTION_REQUIRED,
                message=f"Your payment of {self._money()} needs your attention: {notify}. "
                f"We will try again at {when}.",
            )
        else:
            note = self._event(
                EventType.NOTIFICATION,
                state,
                ("next_retry_at",),
                attempt=attempt,
                notice=Notice.RETRY_PLANNED,
                message=f"Your payment of {self._money()} did not go through. "
                f"We will try again at {when}.",
            )
        return [self._event(EventType.SCHEDULED, state, fields, attempt=attempt), note]

    def _postponed(self, attempt: int) -> Event:
        """A card-network rule moved `attempt` to `next_retry_at`."""
        fields = ("next_retry_at", *_RULE)
        return self._event(EventType.POSTPONED, JobState.SCHEDULED, fields, attempt=attempt)

    def _blocked(self, state: str) -> Event:
        return self._event(EventType.BLOCKED, state, ("reason", *_RULE))

    def _failed_for_good(self, state: str) -> Event:
        notify = self.data.get("notify")
        why = f": {notify}" if notify else ""
        return self._event(
            EventType.NOTIFICATION,
            state,
            notice=Notice.FAILED,
            message=f"Your payment of {self._money()} could not be completed and will not be "
            f"retried{why}.",
        )


def _render_scheduled(entry: OutboxEntry) -> list[Event]:
    moved = [entry._postponed(entry.attempt)] if entry.data.get("rule") else []
    return [*moved, *entry._planned(entry.attempt)]


def _render_initiated(entry: OutboxEntry) -> list[Event]:
    key = attempt_key(entry.job_id, entry.attempt)
    return [
        entry._event(
            EventType.INITIATED,
            JobState.RUNNING,
            ("error_code", "decline_code"),
            idempotency_key=key,
        )
    ]


def _timing(entry: OutboxEntry) -> dict[str, Any]:
    """How long the processor took over the attempt, and which it was (when known)."""
    return {name: entry.data[name] for name in ("processor", "duration_ms") if name in entry.data}


def _render_success(entry: OutboxEntry) -> list[Event]:
    # `settled_by`: the Stripe event that said the payment succeeded outside payretry.
    extra = {"settled_by": entry.data["settled_by"]} if "settled_by" in entry.data else {}
    return [
        entry._event(
            EventType.SUCCESS, JobState.SUCCEEDED, ("reference",), **_timing(entry), **extra
        )
    ]


def _render_revived(entry: OutboxEntry) -> list[Event]:
    return [
        entry._event(
            EventType.REVIVED, JobState.SCHEDULED, ("next_retry_at", "reason", "revived_by")
        )
    ]


def _render_failed(entry: OutboxEntry) -> list[Event]:
    state = str(entry.data.get("state"))
    will_retry = state == JobState.SCHEDULED.value
    failed = entry._event(
        EventType.FAILED,
        state,
        ("error_code", "decline_code", "next_retry_at", "policy_row", "reason", "rule"),
        will_retry=will_retry,
        **_timing(entry),
    )
    if will_retry:
        moved = [entry._postponed(entry.attempt + 1)] if entry.data.get("rule") else []
        return [failed, *moved, *entry._planned(entry.attempt + 1)]
    events = [failed]
    if state == JobState.EXHAUSTED.value:
        events.append(entry._event(EventType.EXHAUSTED, state, ("reason",)))
    elif state == JobState.ABANDONED.value:
        events.append(entry._event(EventType.ABANDONED, state, ("reason",)))
    elif state == JobState.BLOCKED.value:
        events.append(entry._blocked(state))
    return [*events, entry._failed_for_good(state)]


def _render_checkout(entry: OutboxEntry) -> list[Event]:
    url = entry.data.get("url")
    expires = entry.data.get("expires_at")
    until = f" before {_to_second(expires)}" if expires else ""
    return [
        entry._event(
            EventType.NOTIFICATION,
            JobState.AWAITING_PAYER,
            ("url", "checkout_session", "expires_at"),
            notice=Notice.CHECKOUT,
            message=f"Complete checkout at {url} to pay {entry._money()}{until}.",
        )
    ]


def _render_cancelled(entry: OutboxEntry) -> list[Event]:
    return [entry._event(EventType.CANCELLED, JobState.CANCELLED, ("reason",))]


def _render_parked(entry: OutboxEntry) -> list[Event]:
    return [entry._event(EventType.PARKED, JobState.PARKED, ("reason", "rescues"))]


def _render_postponed(entry: OutboxEntry) -> list[Event]:
    """Claimed, but a card-network rule moved the attempt: no retry_scheduled again (its id
    would repeat the first one's); the postponement carries the new time."""
    return [entry._postponed(entry.attempt)]


def _render_blocked(entry: OutboxEntry) -> list[Event]:
    state = JobState.BLOCKED.value
    return [entry._blocked(state), entry._failed_for_good(state)]


def _render_window_closed(entry: OutboxEntry) -> list[Event]:
    state = JobState.ABANDONED.value
    return [
        entry._event(EventType.ABANDONED, state, ("reason",)),
        entry._failed_for_good(state),
    ]


def _render_evicted(entry: OutboxEntry) -> list[Event]:
    state = JobState.EVICTED.value
    return [
        entry._event(EventType.EVICTED, state, ("reason", *EVICTION_FIELDS)),
        entry._failed_for_good(state),
    ]


_RENDER = {
    EventType.SCHEDULED: _render_scheduled,
    EventType.INITIATED: _render_initiated,
    EventType.SUCCESS: _render_success,
    EventType.FAILED: _render_failed,
    EventType.NOTIFICATION: _render_checkout,
    EventType.CANCELLED: _render_cancelled,
    EventType.PARKED: _render_parked,
    EventType.ABANDONED: _render_window_closed,
    EventType.POSTPONED: _render_postponed,
    EventType.BLOCKED: _render_blocked,
    EventType.REVIVED: _render_revived,
    EventType.EVICTED: _render_evicted,
}


# -- the entries each change writes ------------------------------------------------------------


def _common(job: Job) -> dict[str, Any]:
    return {
        "transaction_id": job.transaction_id,
        "user_id": job.user_id,
        "amount_minor": job.money.amount_minor,
        "currency": job.money.currency,
    }


def _rule_data(data: dict[str, Any], verdict: Verdict | None) -> dict[str, Any]:
    """The card-network rule that moved or stopped a retry: its id, sentence and source."""
    if verdict is not None and not verdict.allowed:
        data["rule"] = verdict.rule
        data["rule_reason"] = verdict.reason
        data["rule_source"] = verdict.source
    return data


def queue_data(job: Job, stamp: Callable[[datetime | None], str | None] = iso) -> dict[str, Any]:
    """What a queued job's entry holds (`stamp` formats times: a bulk queue memoises it)."""
    return {
        "transaction_id": job.transaction_id,
        "user_id": job.user_id,
        "amount_minor": job.money.amount_minor,
        "currency": job.money.currency,
        "next_retry_at": stamp(job.next_retry_at),
        "max_attempts": job.max_attempts,
        "policy_row": job.policy_code,
    }


def on_queue(job: Job, verdict: Verdict | None = None) -> OutboxEntry:
    """A job was queued: attempt 1 is scheduled (moved by a card-network rule: `verdict`)."""
    data = _rule_data(queue_data(job), verdict)
    return OutboxEntry(job.id, 1, EventType.SCHEDULED, job.created_at, data)


def on_queue_many(
    jobs: Sequence[Job], verdicts: Sequence[Verdict | None] | None = None
) -> list[OutboxEntry]:
    """`on_queue` for many new jobs: a bulk queue shares a handful of distinct times, so each
    is formatted once."""
    times: dict[datetime | None, str | None] = {}

    def stamp(value: datetime | None) -> str | None:
        found = times.get(value)
        if found is None:
            found = times[value] = iso(value)
        return found

    kind = EventType.SCHEDULED
    if verdicts is None:
        return [
            OutboxEntry(job.id, 1, kind, job.created_at, queue_data(job, stamp)) for job in jobs
        ]
    return [
        OutboxEntry(job.id, 1, kind, job.created_at, _rule_data(queue_data(job, stamp), v))
        for job, v in zip(jobs, verdicts, strict=True)
    ]


def on_claim(job: Job, attempt: int, at: datetime) -> OutboxEntry:
    """Attempt `attempt` was claimed under a lease; the processor is called next. A rescued
    attempt sent again is announced again, under the same id."""
    data = _common(job)
    data["error_code"] = job.error_code
    data["decline_code"] = job.decline_code
    return OutboxEntry(job.id, attempt, EventType.INITIATED, at, data)


def on_outcome(
    job: Job, attempt: int, result: AttemptResult, decision: Decision, at: datetime
) -> OutboxEntry:
    """Attempt `attempt` ended (or now waits on the customer) and `decision` followed."""
    data = _common(job)
    outcome = decision.outcome
    if outcome is Outcome.SUCCEEDED:
        data["reference"] = result.reference
        return OutboxEntry(job.id, attempt, EventType.SUCCESS, at, data)
    if outcome is Outcome.AWAITING:
        action = result.action
        data["url"] = action.url if action else None
        data["checkout_session"] = action.ref if action else None
        data["expires_at"] = iso(action.expires_at) if action else None
        return OutboxEntry(job.id, attempt, EventType.NOTIFICATION, at, data)
    data["state"] = decision.state.value
    data["error_code"] = result.error_code
    data["decline_code"] = result.decline_code
    data["next_retry_at"] = iso(decision.next_retry_at)
    data["max_attempts"] = decision.max_attempts or job.max_attempts
    data["policy_row"] = decision.row.code
    data["reason"] = decision.reason
    if result.notify:
        data["notify"] = result.notify
    _rule_data(data, decision.verdict)
    return OutboxEntry(job.id, attempt, EventType.FAILED, at, data)


def on_cancel(job: Job, at: datetime, reason: str) -> OutboxEntry:
    data = _common(job)
    data["reason"] = reason
    return OutboxEntry(job.id, job.attempt_count + 1, EventType.CANCELLED, at, data)


def on_parked(job: Job, at: datetime) -> OutboxEntry:
    """A running job's lease lapsed once more than it may be rescued: held for an operator.
    `attempt` is the attempt that was sent and never answered."""
    data = _common(job)
    data["reason"] = job.reason
    data["rescues"] = job.rescues
    return OutboxEntry(job.id, job.attempt_count + 1, EventType.PARKED, at, data)


def on_held(job: Job, attempt: int, verdict: Verdict, at: datetime) -> OutboxEntry:
    """A claimed job the card-network rules kept from attempt `attempt`: postponed (`job` is
    scheduled at its new time) or blocked."""
    data = _common(job)
    data["state"] = job.state.value
    data["next_retry_at"] = iso(job.next_retry_at)
    data["reason"] = job.reason
    _rule_data(data, verdict)
    kind = EventType.BLOCKED if job.state is JobState.BLOCKED else EventType.POSTPONED
    return OutboxEntry(job.id, attempt, kind, at, data)


def on_paid_elsewhere(job: Job, attempt: int, reference: str, by: str, at: datetime) -> OutboxEntry:
    """The payment a job retries succeeded outside payretry (`by`: the Stripe event that said
    so). `attempt`: the attempt in flight or waiting on the customer, else the one never made."""
    data = _common(job)
    data["reference"] = reference
    data["settled_by"] = by
    return OutboxEntry(job.id, attempt, EventType.SUCCESS, at, data)


def on_revived(job: Job, by: str, at: datetime) -> OutboxEntry:
    """New card data came (`by`: a Stripe event id, or `operator`): `job`, as stored after the
    revival, is scheduled for its next attempt now."""
    data = _common(job)
    data["next_retry_at"] = iso(job.next_retry_at)
    data["reason"] = job.reason
    data["revived_by"] = by
    return OutboxEntry(job.id, job.attempt_count + 1, EventType.REVIVED, at, data)


def on_evicted(job: Job, at: datetime, by: Job, max_active: int) -> OutboxEntry:
    """A scheduled job was evicted from a full queue to make room for `by` (`job` as stored
    after it: its reason says why). `attempt` is the attempt that will now never be made."""
    data = _common(job)
    data["reason"] = job.reason
    data["priority"] = job.priority
    data["max_active"] = max_active
    data["evicted_by"] = by.id
    data["evicted_by_transaction"] = by.transaction_id
    data["evicted_by_priority"] = by.priority
    return OutboxEntry(job.id, job.attempt_count + 1, EventType.EVICTED, at, data)


def on_window_closed(job: Job, at: datetime) -> OutboxEntry:
    """A waiting job's payment window closed before its next attempt."""
    data = _common(job)
    data["reason"] = job.reason
    return OutboxEntry(job.id, job.attempt_count + 1, EventType.ABANDONED, at, data)


def events_of(entries: list[OutboxEntry]) -> list[Event]:
    return [event for entry in entries for event in entry.events()]
