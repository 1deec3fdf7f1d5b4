"""The card-network rules applied to jobs. Pure.

Which card a job's authorizations count on (`job_card`), the ledger entries a job writes (its
queueing decline as attempt 0, each attempt when it is claimed, settled with the attempt's
outcome), the history the decision reads (`CardHistory`), and the check when a job is claimed
(`claim_verdict`). The rules themselves are in network_rules.py; the store writes the entries in
the transaction of the change that makes them (a queue, a claim, an outcome).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime

from payretry.domain.card_ledger import (
    CardKey,
    EntryKind,
    Initiator,
    KeyKind,
    LedgerEntry,
    Network,
    card_key,
)
from payretry.domain.models import Job
from payretry.domain.network_rules import NetworkRules, Verdict, check
from payretry.domain.results import AttemptResult
from payretry.errors import InvalidInput

# Failures that prove no authorization reached the card network: the processor refused the
# request before sending it (429, a malformed request, a key reused). Their attempt's entry goes.
NOT_SENT = frozenset({"rate_limit_exceeded", "invalid_request_error", "idempotency_error"})
REASON_LIMIT = 1000  # the job's reason column
# A processor's card fingerprint (Stripe's: 16 letters and digits): an opaque id, short, and
# never digits alone, so no card number (nor a mistyped one) passes for one.
_FINGERPRINT = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


def is_fingerprint(text: str) -> bool:
    """True for what can be a processor's card fingerprint and can be no card number."""
    return bool(_FINGERPRINT.match(text)) and not text.isdigit()


@dataclass(frozen=True, slots=True)
class CardIdentity:
    """Who a job's card is. `key` is the best identity known (card_key(): network and
    fingerprint, else payment method, else customer): the key its entries are written under.
    A payment method is one card, so entries carrying the job's `payment_method` count for it
    whatever key they were written under (a job that learnt its fingerprint, another that has
    only the payment method): a job's history is the entries of its key and of its method."""

    key: CardKey
    network: Network
    payment_method: str | None = None

    @property
    def locks(self) -> tuple[str, ...]:
        """What a claim serialises on: the key, and the payment method's own key."""
        method = f"{KeyKind.PAYMENT_METHOD.value}:{self.payment_method}"
        own = str(self.key)
        return (own,) if not self.payment_method or method == own else (own, method)


def job_card(job: Job) -> CardIdentity | None:
    """The card a job's authorizations count on.

    None for a job with no card identity (no fingerprint, payment method or customer): the
    claim's fast path, no ledger read. None too for a Checkout Session job: the customer pays
    there, payretry sends no off-session authorization."""
    refs = job.refs
    if refs.checkout_session or not (job.card_fingerprint or refs.payment_method or refs.customer):
        return None
    key = card_key(
        network=job.card_network,
        fingerprint=job.card_fingerprint,
        payment_method=refs.payment_method,
        customer=refs.customer,
    )
    if key is None:
        return None
    return CardIdentity(key, Network.of(job.card_network), refs.payment_method or None)


def _same(a: LedgerEntry, b: LedgerEntry) -> bool:
    return a.job_id == b.job_id and a.attempt_number == b.attempt_number


@dataclass(frozen=True, slots=True)
class CardHistory:
    """One card's ledger as the decision reads it: every entry newer than the time asked minus
    `NetworkRules.lookback`, from any job, in time order."""

    key: CardKey
    network: Network
    entries: tuple[LedgerEntry, ...] = ()

    def with_entry(self, entry: LedgerEntry) -> CardHistory:
        """The history with `entry`, in place of the entry of the same job and attempt."""
        kept = tuple(e for e in self.entries if not _same(e, entry))
        return replace(self, entries=(*kept, entry))

    def without(self, job_id: str, number: int) -> CardHistory:
        kept = tuple(e for e in self.entries if (e.job_id, e.attempt_number) != (job_id, number))
        return replace(self, entries=kept)

    def sent(self, job_id: str, number: int) -> bool:
        """True when the job's attempt `number` is in the ledger already (sent before)."""
        return any(e.job_id == job_id and e.attempt_number == number for e in self.entries)

    def last_decline(self, job_id: str) -> LedgerEntry | None:
        """The job's own latest decline: what its next attempt would retry."""
        found: LedgerEntry | None = None
        for e in self.entries:
            if e.job_id == job_id and e.kind is EntryKind.DECLINE:
                if found is None or (e.attempt_number or 0) >= (found.attempt_number or 0):
                    found = e
        return found

    def verdict(self, rules: NetworkRules, job: Job, at: datetime) -> Verdict:
        """May the job's next (merchant-initiated) attempt be sent at `at`, within its window?"""
        return check(
            rules,
            self.entries,
            network=self.network,
            at=at,
            initiated_by=Initiator.MERCHANT,
            last_decline=self.last_decline(job.id),
            window_end=job.expires_at,
        )


def queue_entry(job: Job, card: CardIdentity, at: datetime) -> LedgerEntry:
    """The decline a job was queued after, as attempt 0: a decline for Mastercard's counts,
    not a Visa reattempt."""
    return LedgerEntry(
        at, card.key, card.network, EntryKind.DECLINE, job_id=job.id, attempt_number=0
    )


class CardPool:
    """Ledger entries gathered for several jobs at once (a claim's batch, a queue file), each
    found by its key and by its payment method. A job's history is the entries of its key and
    of its payment method, and what the jobs before it in the batch added."""

    def __init__(self) -> None:
        self._by_key: dict[str, dict[tuple[str | None, int | None], LedgerEntry]] = {}
        self._by_method: dict[str, dict[tuple[str | None, int | None], LedgerEntry]] = {}

    def add(self, entry: LedgerEntry, payment_method: str | None) -> None:
        ident = (entry.job_id, entry.attempt_number)
        self._by_key.setdefault(str(entry.card), {})[ident] = entry
        if payment_method:
            self._by_method.setdefault(payment_method, {})[ident] = entry

    def history(self, card: CardIdentity) -> CardHistory:
        found = dict(self._by_key.get(str(card.key), {}))
        if card.payment_method:
            found.update(self._by_method.get(card.payment_method, {}))
        entries = tuple(sorted(found.values(), key=lambda e: e.at))
        return CardHistory(card.key, card.network, entries)


def attempt_entry(job: Job, number: int, card: CardHistory, at: datetime) -> LedgerEntry:
    """An attempt as it is claimed: counted as a possible decline until its outcome settles
    it, so a racing claim on the same card sees the slot taken."""
    return LedgerEntry(
        at, card.key, card.network, EntryKind.ATTEMPT, job_id=job.id, attempt_number=number
    )


def claim_verdict(
    rules: NetworkRules, job: Job, number: int, card: CardHistory, now: datetime
) -> Verdict | None:
    """The check when a job is claimed: may attempt `number` be sent now? None for an attempt
    already in the ledger (a re-send after a crash, under the same key: the processor replays
    its first answer, no new authorization, and its slot is counted already)."""
    if card.sent(job.id, number):
        return None
    return card.verdict(rules, job, now)


def ledger_kind(result: AttemptResult) -> EntryKind | None:
    """What an attempt's outcome makes of its entry; None: no authorization was made."""
    if result.succeeded:
        return EntryKind.APPROVAL
    if result.awaiting or result.error_code in NOT_SENT:
        return None
    return EntryKind.DECLINE


def learnt_card(job: Job, result: AttemptResult) -> tuple[CardKey, Network, str] | None:
    """The card the processor named (network and fingerprint) when the job did not know it
    (or knew another): its attempts then count on that card. A fingerprint that looks like
    card data is never kept."""
    network = Network.of(result.card_network)
    fingerprint = (result.card_fingerprint or "").strip()
    if network is Network.UNKNOWN or not is_fingerprint(fingerprint):
        return None
    if job.card_network == network.value and job.card_fingerprint == fingerprint:
        return None
    try:
        key = card_key(network=network, fingerprint=fingerprint)
    except InvalidInput:
        return None
    return (key, network, fingerprint) if key is not None else None


@dataclass(frozen=True, slots=True)
class LedgerSettle:
    """What an attempt's outcome writes to the card ledger, in the outcome's transaction:
    its entry settled to a decline or an approval (`entry`), or removed (None: nothing was
    sent), and the card the processor named (`learnt`), which the job and its earlier entries
    move to."""

    job_id: str
    number: int
    entry: LedgerEntry | None
    learnt: tuple[CardKey, Network, str] | None = None


def settle(
    job: Job, number: int, card: CardHistory, result: AttemptResult, at: datetime
) -> LedgerSettle:
    learnt = learnt_card(job, result)
    kind = ledger_kind(result)
    if kind is None:
        return LedgerSettle(job.id, number, None, learnt)
    reported = Network.of(result.card_network)
    network = reported if reported is not Network.UNKNOWN else card.network
    key = learnt[0] if learnt is not None else card.key
    declined = kind is EntryKind.DECLINE
    entry = LedgerEntry(
        at,
        key,
        network,
        kind,
        Initiator.MERCHANT,
        result.network_advice_code if declined else None,
        result.network_decline_code if declined else None,
        job.id,
        number,
    )
    return LedgerSettle(job.id, number, entry, learnt)


def after_outcome(card: CardHistory, settled: LedgerSettle) -> CardHistory:
    """The history the next retry is decided on: the attempt's entry as settled."""
    if settled.entry is None:
        return card.without(settled.job_id, settled.number)
    return replace(card.with_entry(settled.entry), network=settled.entry.network)


def hold_reason(number: int, verdict: Verdict) -> str:
    """Why a claimed job was not attempted, in a sentence with the rule's source."""
    why = f"{verdict.reason} (source: {verdict.source})"
    if verdict.blocked:
        text = f"blocked by a card-network rule before attempt {number}: {why}"
    else:
        text = f"attempt {number} postponed by a card-network rule: {why}"
    return text[:REASON_LIMIT]
