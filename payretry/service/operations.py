"""Queue, look up, cancel, retry now: the operator's and the application's use cases.

Cancelling a job that waits on the customer (`awaiting_payer`) closes its Checkout Session at
the processor first, so the customer cannot pay a retry payretry has stopped: a session already
paid makes the job succeed instead (the cancel is refused), one paid with a method that settles
later refuses the cancel until its outcome is known, and a processor that cannot be asked
refuses it with nothing changed."""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from payretry.domain.bound import QueueBound, QueueFull
from payretry.domain.card_checks import (
    CardHistory,
    CardIdentity,
    CardPool,
    job_card,
    queue_entry,
)
from payretry.domain.card_ledger import LedgerEntry
from payretry.domain.changes import Cancelled, Queued, Settlement
from payretry.domain.durations import iso
from payretry.domain.models import Job, JobState, NewJob
from payretry.domain.outcomes import JobResult, RunReport
from payretry.domain.policy import Decision, Outcome, RetryPolicy
from payretry.domain.ports import (
    CardLedger,
    DuplicateActive,
    ExpiresActions,
    RetriedElsewhere,
    Store,
)
from payretry.domain.results import AttemptInDoubt, AttemptResult, Closing
from payretry.errors import InvalidRows, ProcessorError, Refused
from payretry.service.execution import Execution
from payretry.service.lookup import job_status
from payretry.service.reporting import Reporter

log = logging.getLogger("payretry")
_TWELVE_DIGITS = re.compile(r"[0-9]{12}")


def new_job_id() -> str:
    """A random hex id never holding 12 digits in a row (about one uuid in twenty does):
    redaction of logs and errors, and card-number scanners, would take the run for a card."""
    while True:
        job_id = uuid.uuid4().hex
        if not _TWELVE_DIGITS.search(job_id):
            return job_id


def _first_decision(
    policy: RetryPolicy, job: Job, now: datetime, card: CardHistory | None = None
) -> Decision:
    if job.expires_at is not None and job.expires_at <= now:
        raise Refused(f"the payment window closed at {iso(job.expires_at)}; nothing queued")
    decision = policy.decide(job, 0, AttemptResult.queued_after(job), now, card)
    if decision.outcome is Outcome.FAILED:
        raise Refused(f"not retryable: {decision.reason}; nothing queued")
    if decision.outcome is Outcome.ABANDONED:
        raise Refused(f"window too short: {decision.reason}; nothing queued")
    if decision.outcome is Outcome.BLOCKED:
        raise Refused(f"blocked: {decision.reason}; nothing queued")
    return decision


def _scheduled(job: Job, decision: Decision) -> Job:
    return replace(
        job,
        max_attempts=decision.max_attempts,
        next_retry_at=decision.next_retry_at,
        reason=decision.reason,
        policy_code=decision.row.code,
        network_rule=decision.rule,
    )


class _Cards:
    """The card ledgers a queue reads (one read for a whole file), each new job's queueing
    decline added as it is decided, so the next job on the same card counts it."""

    def __init__(
        self, ledger: CardLedger | None, cards: Sequence[CardIdentity], since: datetime
    ) -> None:
        self.pool = ledger.card_pool(cards, since) if ledger is not None and cards else CardPool()

    def history(self, job: Job, now: datetime) -> tuple[CardHistory, LedgerEntry] | None:
        card = job_card(job)
        if card is None:
            return None
        if card.link is not None:  # it came with both: its method is its card's from now on
            self.pool.link(*card.link)
        entry = queue_entry(job, card, now)
        return self.pool.history(card).with_entry(entry), entry

    def add(self, entry: LedgerEntry) -> None:
        self.pool.add(entry)


def _conflict(existing: Job) -> Refused:
    return Refused(
        f"a different job ({existing.id}, {existing.state.value}) is already active for "
        f"transaction {existing.transaction_id}; cancel it first"
    )


@dataclass(frozen=True, slots=True)
class QueueManyResult:
    created: int
    existing: int


class Operations:
    """The operator's and the application's use cases: queue, look up, cancel, retry now.
    `execution` (how an attempt is made) is needed only by `retry_now`; `expiry` (the
    processor's ExpiresActions) only by `cancel` of a job waiting on the customer."""

    def __init__(
        self,
        store: Store,
        policy: RetryPolicy,
        *,
        execution: Execution | None = None,
        ledger: CardLedger | None = None,
        elsewhere: RetriedElsewhere | None = None,
        expiry: ExpiresActions | None = None,
        bound: QueueBound | None = None,
    ) -> None:
        self.store = store
        self.expiry = expiry  # closes a waiting job's Checkout Session before it is cancelled
        self.bound = bound  # `[queue] max_active`: a full queue evicts or refuses
        self.policy = policy
        self.execution = execution
        self.ledger = ledger  # the card ledger the first retry is checked against
        self.elsewhere = elsewhere  # the processor's own retries (Stripe Billing)

    def _not_retried_elsewhere(self, request: NewJob) -> None:
        if self.elsewhere is None or not request.refs.payment_intent:
            return
        who = self.elsewhere.retried_elsewhere(request)
        if who is not None:
            raise Refused(
                f"{who}; a second retry engine on the same payment risks a double charge and "
                "network fees: nothing queued"
            )

    def _cards(self, jobs: Sequence[Job], now: datetime) -> _Cards:
        cards = [card for card in (job_card(job) for job in jobs) if card is not None]
        return _Cards(self.ledger, cards, now - self.policy.network.lookback)

    def prepare(self, request: NewJob, now: datetime, *, job_id: str | None = None) -> Queued:
        """The new job a request makes, decided by the policy and the card-network rules, not
        yet stored (the caller checked no job is active for its transaction); Refused when the
        transaction was paid already, is retried elsewhere, or the policy will not retry it."""
        if self.store.succeeded_for([request.transaction_id]):
            raise Refused(
                f"transaction {request.transaction_id} was already paid by an earlier retry; "
                "queueing it again could charge the customer twice"
            )
        self._not_retried_elsewhere(request)
        draft = request.draft(job_id or new_job_id(), now)
        carded = self._cards([draft], now).history(draft, now)
        card, entry = carded if carded is not None else (None, None)
        decision = _first_decision(self.policy, draft, now, card)
        return Queued(_scheduled(draft, decision), entry, decision.verdict)

    def queue(
        self, request: NewJob, now: datetime, *, job_id: str | None = None
    ) -> tuple[Job, bool]:
        """Queue a retry; (job, created). Idempotent for the same request while active.
        `job_id`: the id the new job must have (a first attempt already fixed it)."""
        existing = self.store.active_for([request.transaction_id]).get(request.transaction_id)
        if existing is not None:
            if request.same_request(existing):
                found = self.store.get(existing.id)
                assert found is not None
                return found, False
            raise _conflict(existing)
        queued = self.prepare(request, now, job_id=job_id)
        try:
            job = self.store.insert(queued, bound=self.bound)
        except DuplicateActive:  # a concurrent queue of the same transaction won the race
            winner = self.store.active_for([request.transaction_id]).get(request.transaction_id)
            if winner is not None and request.same_request(winner):
                found = self.store.get(winner.id)
                assert found is not None
                return found, False
            if winner is None:
                raise Refused("a concurrent change to this transaction; try again") from None
            raise _conflict(winner) from None
        log.info(
            "queued retry",
            extra={
                "transaction_id": job.transaction_id,
                "error_code": job.error_code,
                "next_retry_at": iso(job.next_retry_at),
            },
        )
        return job, True

    def queue_many(
        self,
        rows: Sequence[tuple[int, NewJob]],
        now: datetime,
        progress: Callable[[int], None] | None = None,
        invalid: Sequence[tuple[int, str]] = (),
    ) -> QueueManyResult:
        """All or nothing: every row is checked first; any problem and nothing is written.

        `invalid` carries rows that already failed validation, so one report names them all.
        """
        problems: list[tuple[int, str]] = list(invalid)
        refused_only = not invalid
        ids = [r.transaction_id for _, r in rows]
        active = self.store.active_for(ids)
        paid = self.store.succeeded_for(ids)
        seen: dict[str, tuple[int, NewJob]] = {}
        jobs: list[Queued] = []
        existing = 0
        # Without jitter the first decision depends only on the codes and the window, so rows
        # that share them share it (a bulk file has a handful of codes and one "now").
        decisions: dict[tuple[str, str | None, datetime | None], Decision] = {}
        drafts: list[tuple[int, NewJob, Job]] = []
        for line, request in rows:
            txn = request.transaction_id
            if txn in seen:
                first_line, first = seen[txn]
                if first == request or first.same_request_as(request):
                    existing += 1
                    continue
                problems.append(
                    (line, f"transaction {txn} also on line {first_line} with different parameters")
                )
                continue
            seen[txn] = (line, request)
            if txn in active:
                if request.same_request(active[txn]):
                    existing += 1
                    continue
                problems.append((line, str(_conflict(active[txn]))))
                continue
            if txn in paid:
                problems.append((line, f"transaction {txn} was already paid by an earlier retry"))
                continue
            drafts.append((line, request, request.draft(new_job_id(), now)))
        cards = self._cards([draft for _, _, draft in drafts], now)
        lines: dict[str, int] = {}  # job id -> its line, for a full queue's refusal
        for line, request, draft in drafts:
            carded = cards.history(draft, now)
            card, entry = carded if carded is not None else (None, None)
            key = (request.error_code, request.decline_code, request.expires_at)
            shared = not self.policy.jitter and card is None  # a card's history is its own
            decision = decisions.get(key) if shared else None
            try:
                self._not_retried_elsewhere(request)
                if decision is None:
                    decision = _first_decision(self.policy, draft, now, card)
            except Refused as exc:
                problems.append((line, exc.message))
                continue
            if shared:
                decisions[key] = decision
            if entry is not None:
                cards.add(entry)
            jobs.append(Queued(_scheduled(draft, decision), entry, decision.verdict))
            lines[draft.id] = line
        if problems:
            raise InvalidRows(sorted(problems), refused_only=refused_only)
        try:
            self.store.insert_many(jobs, bound=self.bound)
        except DuplicateActive as exc:
            raise Refused(str(exc)) from None
        except QueueFull as exc:  # all or nothing: the file's lowest rows named
            refused = [(lines[job_id], why) for job_id, why in exc.refused.items()]
            raise InvalidRows(sorted(refused), refused_only=True) from None
        if progress:
            progress(len(rows))
        return QueueManyResult(created=len(jobs), existing=existing)

    def status(self, transaction_id: str) -> Job:
        return job_status(self.store, transaction_id)

    def cancel(self, transaction_id: str, now: datetime) -> Job:
        job = self.status(transaction_id)
        if job.state.final:
            raise Refused(f"job for {transaction_id} is already {job.state.value}")
        if job.state is JobState.AWAITING_PAYER and job.action is not None:
            self._close_action(job, now)
        cancelled = self.store.cancel(Cancelled(job, now, "cancelled by an operator"))
        log.info("cancelled retry", extra={"transaction_id": transaction_id})
        return cancelled

    def _close_action(self, job: Job, now: datetime) -> None:
        """Close the customer's action at the processor before the job may be cancelled;
        raises (and changes nothing, or settles a payment that was already made) if it cannot
        be closed."""
        assert job.action is not None
        txn, ref = job.transaction_id, job.action.ref
        if self.expiry is None:
            raise Refused(
                f"the customer has checkout session {ref} open for {txn}, and no processor is "
                "configured that could expire it: nothing cancelled"
            )
        try:
            closed = self.expiry.expire_action(job)
        except AttemptInDoubt as exc:
            raise ProcessorError(
                f"could not expire checkout session {ref} for {txn} ({exc.message}); the "
                "customer could still pay it, so nothing was cancelled: try again"
            ) from None
        if closed.closing is Closing.EXPIRED:
            return
        if closed.closing is Closing.PENDING:
            raise Refused(
                f"not cancelled: {closed.detail}; payretry waits for it (run-due checks it)"
            )
        result = closed.result
        assert result is not None and result.succeeded
        decision = self.policy.decide(job, job.attempt_count, result, now)
        settled = self.store.settle_awaiting([Settlement(job, result, decision, now)])
        if settled and settled[0]:
            log.info(
                "checkout already paid: the job succeeded instead of being cancelled",
                extra={"transaction_id": txn, "outcome": "succeeded"},
            )
        raise Refused(
            f"not cancelled: {closed.detail} (payment {result.reference}); the job for {txn} "
            "succeeded instead"
        )

    def retry_now(self, transaction_id: str, now: datetime) -> JobResult:
        """An operator- or customer-initiated retry of one job, now: one attempt counted."""
        if self.execution is None:  # pragma: no cover - wiring builds it for the edges
            raise RuntimeError("retry_now needs an execution")
        job = self.status(transaction_id)
        if job.state.final:
            raise Refused(f"job for {transaction_id} is already {job.state.value}")
        if job.state is JobState.AWAITING_PAYER:
            raise Refused(
                f"the customer has checkout session {job.action.ref if job.action else '?'} "
                f"open for {transaction_id}; run-due checks it"
            )
        if job.attempts_remaining <= 0:
            raise Refused(f"no attempts left for {transaction_id}")
        if job.expires_at is not None and job.expires_at <= now:
            self.store.abandon_expired(now)
            raise Refused(
                f"the payment window for {transaction_id} closed at {iso(job.expires_at)}"
            )
        claimed = self.store.claim(
            now, 1, self.execution.lease_for, job_id=job.id, rules=self.policy.network
        )
        if claimed.held:  # a card-network rule moved or stopped it: nothing sent
            raise Refused(f"not attempted: {claimed.held[0].job.reason}")
        if not claimed:
            raise Refused(f"an attempt for {transaction_id} is already in progress")
        results: list[JobResult] = []
        self.execution.process(claimed, Reporter(RunReport(), results.append))
        return results[0]
