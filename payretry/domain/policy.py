"""Retry policy as data: one row per error or decline code, a default row, a global cap.

The lookup tries the decline code, then the error code, then the default, so
`card_declined` + `insufficient_funds` follows the insufficient_funds row. A decision is a value:
the policy decides, the runner and the store act.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum

from payretry.domain.card_checks import REASON_LIMIT, CardHistory, failure_history
from payretry.domain.durations import format_duration, iso
from payretry.domain.models import Job, JobState
from payretry.domain.network_rules import NetworkRules, Verdict
from payretry.domain.results import AttemptResult


@dataclass(frozen=True, slots=True)
class PolicyRow:
    code: str
    retry: bool
    max_attempts: int
    delays: tuple[timedelta, ...] = ()
    source: str = ""  # where the row came from: a citation, or "config.toml"

    def delay_before(self, attempt_number: int) -> timedelta:
        """The wait before attempt `attempt_number` (1-based); past the list, the last delay."""
        if not self.delays:
            return timedelta()
        return self.delays[min(attempt_number, len(self.delays)) - 1]

    def describe(self) -> str:
        if not self.retry or self.max_attempts == 0:
            return f"{self.code}: never retried"
        waits = ", ".join(format_duration(d) for d in self.delays) or "0s"
        return f"{self.code}: up to {self.max_attempts} attempts, waiting {waits}"


def _m(minutes: float) -> timedelta:
    return timedelta(minutes=minutes)


def _h(hours: float) -> timedelta:
    return timedelta(hours=hours)


_SEED = "seed 000 strategy table"
_ISSUE = "payretry issue #2 strategy table"
_STRIPE = "Stripe decline codes (docs.stripe.com/declines/codes)"
_NETWORKS = "card network retry rules (Visa/Mastercard 'do not retry' response codes)"
_ADVICE = "Stripe advice codes (docs.stripe.com/declines#retrying-issuer-declines)"

DEFAULT_ROW = PolicyRow("default", True, 2, (_m(5), _m(30)), "seed 000 FAQ: unknown codes")

# The strategy table of the seed (000), as the core issue fixes it.
STRATEGY_ROWS: tuple[PolicyRow, ...] = (
    PolicyRow("card_declined", False, 0, (), _SEED),
    PolicyRow("network_error", True, 3, (timedelta(0), _m(1), _m(5)), _SEED),
    PolicyRow("insufficient_funds", True, 2, (_h(24), _h(48)), _SEED),
    PolicyRow("processing_error", True, 3, (_m(1), _m(5), _m(30)), _SEED),
    PolicyRow("authentication_failed", True, 2, (_m(5), _m(30)), _SEED),
    PolicyRow("rate_limit_exceeded", True, 3, (_m(30), _h(1), _h(2)), _SEED),
    PolicyRow("service_unavailable", True, 3, (_m(1), _m(5), _m(30)), _ISSUE),
)

# Codes that must never be retried: the issuer or network said so, or a retry cannot help
# without the customer (a new card, new details, authentication).
HARD_DECLINES: Mapping[str, str] = {
    "incorrect_number": _STRIPE + ": the customer must use another card",
    "lost_card": _STRIPE + ": card reported lost",
    "pickup_card": _STRIPE + ": card reported lost or stolen",
    "stolen_card": _STRIPE + ": card reported stolen",
    "revocation_of_authorization": _STRIPE + "; " + _NETWORKS,
    "revocation_of_all_authorizations": _STRIPE + "; " + _NETWORKS,
    "authentication_required": _STRIPE + ": the customer must authenticate (never off-session)",
    "highest_risk_level": "Stripe Radar: blocked as highest risk",
    "transaction_not_allowed": _STRIPE + ": the customer must contact their issuer",
    "fraudulent": _STRIPE + ": suspected fraud",
    "do_not_try_again": _STRIPE + "; Mastercard advice code 03/21 'do not try again'",
    "stop_payment_order": _STRIPE + "; " + _NETWORKS,
    "invalid_account": _STRIPE + ": card or account invalid",
    "new_account_information_available": _STRIPE + "; Visa/Mastercard account updater",
    "expired_card": _STRIPE + ": the customer must use another card",
    "restricted_card": _STRIPE + ": card restricted (possibly lost or stolen)",
    "security_violation": _STRIPE + ": possibly lost or stolen",
    "merchant_blacklist": _STRIPE + ": matches a block list",
    "duplicate_transaction": _STRIPE + ": an identical charge was just made; retrying risks two",
    "card_not_supported": _STRIPE + ": the card does not support this purchase",
    "currency_not_supported": _STRIPE + ": the card does not support this currency",
    "incorrect_cvc": _STRIPE + ": the customer must correct the card details",
    "invalid_cvc": _STRIPE + ": the customer must correct the card details",
    "invalid_expiry_month": _STRIPE + ": the customer must correct the card details",
    "invalid_expiry_year": _STRIPE + ": the customer must correct the card details",
    "invalid_number": _STRIPE + ": the customer must correct the card details",
    "not_permitted": _STRIPE + ": the payment is not permitted",
    "testmode_decline": _STRIPE + ": a Stripe test card that always declines",
    "confirm_card_data": _ADVICE + ": the customer must update or confirm the card",
    # Not declines: requests Stripe refused as malformed; the same request fails the same way.
    "invalid_request_error": "Stripe API errors (docs.stripe.com/error-handling): fix the request",
    "idempotency_error": "Stripe API errors: the key was reused with other parameters (a bug)",
}

# Soft declines: the issuer may approve later. Schedules spread over hours or days, as Stripe's
# Smart Retries do, except where the issuer asks for a prompt re-send.
SOFT_DECLINES: tuple[PolicyRow, ...] = (
    PolicyRow("try_again_later", True, 3, (_h(1), _h(6), _h(24)), _STRIPE + ": retry later"),
    PolicyRow("issuer_not_available", True, 3, (_m(5), _h(1), _h(6)), _STRIPE + ": issuer down"),
    PolicyRow("reenter_transaction", True, 3, (_m(1), _m(30), _h(6)), _STRIPE + ": re-send"),
    PolicyRow("approve_with_id", True, 2, (_h(1), _h(24)), _STRIPE + ": attempt again"),
    PolicyRow("generic_decline", True, 2, (_h(24), _h(72)), _STRIPE + ": unknown reason"),
    PolicyRow("do_not_honor", True, 2, (_h(24), _h(72)), _STRIPE + ": unknown reason"),
    PolicyRow("card_velocity_exceeded", True, 2, (_h(24), _h(48)), _STRIPE + ": limit reached"),
    PolicyRow(
        "withdrawal_count_limit_exceeded", True, 2, (_h(24), _h(48)), _STRIPE + ": limit reached"
    ),
)


# Checkout: the customer let a recreated Checkout Session expire. Seed 004: backoff 1, 5, 15
# minutes, at most 3 attempts per session.
CHECKOUT_ROWS: tuple[PolicyRow, ...] = (
    PolicyRow("checkout_expired", True, 3, (_m(1), _m(5), _m(15)), "seed 004 retry flow"),
)


def default_rows() -> dict[str, PolicyRow]:
    rows = {row.code: row for row in STRATEGY_ROWS}
    rows.update({row.code: row for row in SOFT_DECLINES})
    rows.update({row.code: row for row in CHECKOUT_ROWS})
    rows.update({code: PolicyRow(code, False, 0, (), why) for code, why in HARD_DECLINES.items()})
    return rows


class Outcome(StrEnum):
    RETRY = "rescheduled"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    EXHAUSTED = "exhausted"
    ABANDONED = "abandoned"
    AWAITING = "awaiting_payer"  # a Checkout Session waits for the customer
    BLOCKED = "blocked"  # a card-network rule forbids the next retry on the card

    @property
    def state(self) -> JobState:
        return _OUTCOME_STATE[self]


_OUTCOME_STATE: Mapping[Outcome, JobState] = {  # built once: read per attempt on the hot path
    Outcome.AWAITING: JobState.AWAITING_PAYER,
    Outcome.RETRY: JobState.SCHEDULED,
    Outcome.SUCCEEDED: JobState.SUCCEEDED,
    Outcome.FAILED: JobState.FAILED,
    Outcome.EXHAUSTED: JobState.EXHAUSTED,
    Outcome.ABANDONED: JobState.ABANDONED,
    Outcome.BLOCKED: JobState.BLOCKED,
}


@dataclass(frozen=True, slots=True)
class Lookup:
    row: PolicyRow
    matched: str  # "decline_code", "error_code" or "default"


@dataclass(frozen=True, slots=True)
class Decision:
    """`verdict`: what the card-network rules said of the next retry, when they moved it
    (postponed) or stopped it (blocked); None when they were not asked or let it go."""

    outcome: Outcome
    row: PolicyRow
    reason: str
    next_retry_at: datetime | None = None
    max_attempts: int = 0
    verdict: Verdict | None = None

    @property
    def state(self) -> JobState:
        return self.outcome.state

    @property
    def rule(self) -> str | None:
        """The card-network rule that moved or stopped the next retry, if one did."""
        return self.verdict.rule if self.verdict is not None else None


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    rows: Mapping[str, PolicyRow]
    default: PolicyRow = DEFAULT_ROW
    cap: int = 3  # the global cap on attempts (PAYRETRY_MAX_ATTEMPTS)
    jitter: float = 0.0  # 0.1 spreads each delay by up to +/-10%, deterministically per attempt
    network: NetworkRules = field(default_factory=NetworkRules)  # the `[network]` rules

    @classmethod
    def standard(
        cls, *, cap: int = 3, jitter: float = 0.0, network: NetworkRules | None = None
    ) -> RetryPolicy:
        return cls(rows=default_rows(), cap=cap, jitter=jitter, network=network or NetworkRules())

    def with_rows(self, rows: Iterable[PolicyRow]) -> RetryPolicy:
        merged = dict(self.rows)
        default = self.default
        for row in rows:
            if row.code == "default":
                default = row
            else:
                merged[row.code] = row
        return replace(self, rows=merged, default=default)

    def lookup(self, error_code: str, decline_code: str | None = None) -> Lookup:
        if decline_code and decline_code in self.rows:
            return Lookup(self.rows[decline_code], "decline_code")
        if error_code in self.rows:
            return Lookup(self.rows[error_code], "error_code")
        return Lookup(self.default, "default")

    def limit(self, row: PolicyRow) -> int:
        return max(0, min(row.max_attempts, self.cap)) if row.retry else 0

    def _when(self, job_id: str, number: int, delay: timedelta, now: datetime) -> datetime:
        if self.jitter and delay:
            digest = hashlib.sha256(f"{job_id}:{number}".encode()).digest()
            unit = int.from_bytes(digest[:8], "big") / 2**64 * 2 - 1  # [-1, 1)
            delay = delay * (1 + self.jitter * unit)
        return now + delay

    def _code_text(self, lookup: Lookup, error_code: str, decline_code: str | None) -> str:
        if lookup.matched == "decline_code":
            return f"decline code {decline_code}"
        if decline_code:
            return f"error code {error_code} (decline code {decline_code} has no row of its own)"
        return f"error code {error_code}"

    def decide(
        self,
        job: Job,
        attempt_number: int,
        result: AttemptResult,
        now: datetime,
        card: CardHistory | None = None,
    ) -> Decision:
        """What follows attempt `attempt_number` of `job` ending with `result`, at `now`.

        One path for every attempt: attempt 0 is the failure the job was queued after (its first
        retry is decided on it, `AttemptResult.queued_after(job)`); a failed attempt is looked up
        by its own error (the new error's row decides, bounded by the job's limit); a success or
        a checkout that now waits on the customer keep the job's row.

        `card`: the job's card ledger, this attempt's outcome in it (None: no card identity;
        a failure that carries the network's codes is then checked against them alone).
        A retry the policy would make is then checked against the card-network rules
        (`self.network`): moved to the earliest time that keeps every rule, or blocked when no
        time does or that time falls after the payment window."""
        if result.action is not None:  # a Checkout Session waits for the customer
            row = self.lookup(job.error_code, job.decline_code).row
            until = f" until {iso(result.action.expires_at)}" if result.action.expires_at else ""
            decision = Decision(
                Outcome.AWAITING,
                row,
                f"attempt {attempt_number}: waiting for the customer to complete checkout "
                f"session {result.action.ref}{until}",
                None,
                job.max_attempts,
            )
        elif result.succeeded:
            row = self.lookup(job.error_code, job.decline_code).row
            ref = f" (reference {result.reference})" if result.reference else ""
            decision = Decision(
                Outcome.SUCCEEDED,
                row,
                f"attempt {attempt_number} succeeded{ref}",
                None,
                job.max_attempts,
            )
        else:
            decision = self._after_failure(
                job,
                attempt_number,
                result.error_code or "processing_error",
                result.decline_code,
                now,
            )
            if decision.outcome is Outcome.RETRY:
                if card is None and (result.network_advice_code or result.network_decline_code):
                    # No ledger for this job, but the failure's own network codes still hold.
                    card = failure_history(job, attempt_number, result, now)
                if card is not None:
                    decision = self._by_the_card(job, decision, card)
        if result.notify:  # `status` shows what the customer was asked to do
            reason = f"{decision.reason}; customer notified: {result.notify}"
            decision = replace(decision, reason=reason[:REASON_LIMIT])
        return decision

    def _after_failure(
        self,
        job: Job,
        attempt_number: int,
        error_code: str,
        decline_code: str | None,
        now: datetime,
    ) -> Decision:
        lookup = self.lookup(error_code, decline_code)
        row, what = lookup.row, self._code_text(lookup, error_code, decline_code)
        row_limit = self.limit(row)
        # A new job has no limit yet: its row's (within the cap) becomes it.
        limit = row_limit if attempt_number == 0 else min(job.max_attempts, row_limit)
        if row_limit == 0:
            if row.retry and row.max_attempts > 0 and self.cap == 0:
                why = "the global cap on attempts ([retry] max_attempts) is 0: nothing is retried"
                return Decision(Outcome.FAILED, row, f"{what} would be retried, but {why}", None, 0)
            source = f" ({row.source})" if row.source else ""
            return Decision(Outcome.FAILED, row, f"{what} is never retried{source}", None, limit)
        if attempt_number >= limit:
            return Decision(
                Outcome.EXHAUSTED,
                row,
                f"{attempt_number} of {limit} attempts used (policy row {row.code!r}, "
                f"cap {self.cap})",
                None,
                limit,
            )
        number = attempt_number + 1
        delay = row.delay_before(number)
        at = self._when(job.id, number, delay, now)
        if job.expires_at is not None and at > job.expires_at:
            which = "the first retry" if attempt_number == 0 else f"attempt {number}"
            return Decision(
                Outcome.ABANDONED,
                row,
                f"{which} at {iso(at)} would fall after the payment window, "
                f"which ends {iso(job.expires_at)}",
                None,
                limit,
            )
        return Decision(
            Outcome.RETRY,
            row,
            f"{what}: policy row {row.code!r} waits {format_duration(delay)} before attempt "
            f"{number} of {limit}",
            at,
            limit,
        )

    def _by_the_card(self, job: Job, decision: Decision, card: CardHistory) -> Decision:
        """The policy's retry, checked against the card-network rules."""
        assert decision.next_retry_at is not None
        verdict = card.verdict(self.network, job, decision.next_retry_at)
        if verdict.allowed:
            return decision
        why = f"{verdict.reason} (source: {verdict.source})"
        if verdict.blocked:
            return Decision(
                Outcome.BLOCKED,
                decision.row,
                f"{decision.reason}, but a card-network rule stops it: {why}"[:REASON_LIMIT],
                None,
                decision.max_attempts,
                verdict,
            )
        return replace(
            decision,
            next_retry_at=verdict.at,
            reason=f"{decision.reason}; moved by a card-network rule: {why}"[:REASON_LIMIT],
            verdict=verdict,
        )

    def table(self) -> list[PolicyRow]:
        """Every row, the strategy table first, then the rest by code, the default last."""
        order = [row.code for row in STRATEGY_ROWS]
        rest = sorted(code for code in self.rows if code not in order)
        return (
            [self.rows[c] for c in order if c in self.rows]
            + [self.rows[c] for c in rest]
            + [self.default]
        )
