"""The card-network rules applied to jobs. Pure.

Which card a job's authorizations count on (`job_card`), the ledger entries a job writes (its
queueing decline as attempt 0, each attempt when it is claimed, settled with the attempt's
outcome), the history the decision reads (`CardHistory`), and the check when a job is claimed
(`claim_verdict`). The rules themselves are in network_rules.py; the store writes the entries in
the transaction of the change that makes them (a queue, a claim, an outcome).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
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
from payretry.domain.network_rules import NetworkRules, Verdict, VerdictKind, check
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
    """Who a job's card is.

    `key` is the best identity known (card_key(): network and fingerprint, else payment method,
    else customer). Entries are written under `ledger_key`: the payment method's key when the
    job has one (a payment method is one card, and many jobs share it before any of them learns
    the card's fingerprint), else `key`. A payment method linked to its card (the processor
    named the card, or the queue gave both) joins the card's entries: a job's history is the
    entries of every key in `CardPool.keys_of`. A job with a customer and no payment method
    also keeps reading its customer's key, where it wrote before it learnt its card."""

    key: CardKey
    network: Network
    payment_method: str | None = None
    customer: str | None = None
    # Worked out once (a claim asks them for every job of its batch):
    method_key: str | None = field(init=False, compare=False, repr=False)
    ledger_key: str = field(init=False, compare=False, repr=False)
    own_keys: frozenset[str] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        method = (
            f"{KeyKind.PAYMENT_METHOD.value}:{self.payment_method}" if self.payment_method else None
        )
        ledger = method or str(self.key)
        own = {str(self.key), ledger}
        if self.customer and not self.payment_method:
            # Its customer's key too, where it wrote before it learnt its card.
            own.add(f"{KeyKind.CUSTOMER.value}:{self.customer}")
        object.__setattr__(self, "method_key", method)
        object.__setattr__(self, "ledger_key", ledger)
        object.__setattr__(self, "own_keys", frozenset(own))

    @property
    def written_under(self) -> CardKey:
        """`ledger_key` as a CardKey: the key of the entries this job writes."""
        if self.payment_method:
            return CardKey(KeyKind.PAYMENT_METHOD, self.payment_method)
        return self.key

    @property
    def link(self) -> tuple[str, str] | None:
        """(payment method's key, card's key) when the job knows both."""
        if self.method_key is None or self.key.kind is not KeyKind.CARD:
            return None
        return self.method_key, str(self.key)


def job_card(job: Job) -> CardIdentity | None:
    """The card a job's authorizations count on.

    None for a job with no card identity (no fingerprint, payment method or customer): the
    claim's fast path, no ledger read. None too for a Checkout Session job: the customer pays
    there, payretry sends no off-session authorization."""
    refs = job.refs
    if refs.checkout_session or not (job.card_fingerprint or refs.payment_method or refs.customer):
        return None
    network = Network.of(job.card_network)
    # card_key()'s key, built without checking the values again on the claim's hot path: they
    # were checked on their way in (the queue's validation; learnt_card for the processor's).
    if job.card_fingerprint and network is not Network.UNKNOWN:
        key = CardKey(KeyKind.CARD, f"{network.value}:{job.card_fingerprint}")
    elif refs.payment_method:
        key = CardKey(KeyKind.PAYMENT_METHOD, refs.payment_method)
    else:
        assert refs.customer is not None
        key = CardKey(KeyKind.CUSTOMER, refs.customer)
    return CardIdentity(key, network, refs.payment_method or None, refs.customer or None)


def _plainly_allowed(rules: NetworkRules, entries: tuple[LedgerEntry, ...]) -> bool:
    """True when no rule can stand in the way, whatever the time asked: fewer entries than any
    cap allows (each cap counts a subset of them, the new attempt included), and none with a
    network code (no MAC wait, no never-retry decline). The common case of a card with a few
    plain declines skips the full check."""
    n = len(entries) + 1
    if n > rules.mc_declines_per_24h or n > rules.mc_declines_per_30d:
        return False
    if n > rules.visa_reattempts_per_30d:
        return False
    for _, limit in rules.visa_earlier_limits:
        if n > limit:
            return False
    if rules.other_attempts_per_30d is not None and n > rules.other_attempts_per_30d:
        return False
    for e in entries:
        if e.network_advice_code is not None or e.network_decline_code is not None:
            return False
    return True


@dataclass(frozen=True, slots=True)
class CardHistory:
    """One card's ledger as the decision reads it: every entry newer than the time asked minus
    `NetworkRules.lookback`, from any job (in no particular order: the check orders them)."""

    key: CardKey
    network: Network
    entries: tuple[LedgerEntry, ...] = ()

    def with_entry(self, entry: LedgerEntry, network: Network | None = None) -> CardHistory:
        """The history with `entry`, in place of the entry of the same job and attempt."""
        job, number = entry.job_id, entry.attempt_number
        kept = [e for e in self.entries if e.attempt_number != number or e.job_id != job]
        kept.append(entry)
        return CardHistory(self.key, network or self.network, tuple(kept))

    def plus(self, entry: LedgerEntry) -> CardHistory:
        """The history with a new entry (one of no attempt it holds already)."""
        return CardHistory(self.key, self.network, (*self.entries, entry))

    def without(self, job_id: str, number: int) -> CardHistory:
        kept = tuple(e for e in self.entries if (e.job_id, e.attempt_number) != (job_id, number))
        return CardHistory(self.key, self.network, kept)

    def sent(self, job_id: str, number: int) -> bool:
        """True when the job's attempt `number` is in the ledger already (sent before)."""
        return self.entry_of(job_id, number) is not None

    def entry_of(self, job_id: str, number: int) -> LedgerEntry | None:
        for e in self.entries:
            if e.job_id == job_id and e.attempt_number == number:
                return e
        return None

    def last_decline(self, job_id: str, after: int | None = None) -> LedgerEntry | None:
        """The job's own latest decline: what its next attempt would retry. `after`: the job
        was revived with new card data after that attempt, so no earlier decline is retried."""
        found: LedgerEntry | None = None
        for e in self.entries:
            if after is not None and (e.attempt_number or 0) <= after:
                continue
            if e.job_id == job_id and e.kind is EntryKind.DECLINE:
                if found is None or (e.attempt_number or 0) >= (found.attempt_number or 0):
                    found = e
        return found

    def verdict(self, rules: NetworkRules, job: Job, at: datetime) -> Verdict:
        """May the job's next (merchant-initiated) attempt be sent at `at`, within its window?"""
        if _plainly_allowed(rules, self.entries):
            return Verdict(VerdictKind.ALLOWED, at)
        return check(
            rules,
            self.entries,
            network=self.network,
            at=at,
            initiated_by=Initiator.MERCHANT,
            last_decline=self.last_decline(job.id, job.revived_after),
            window_end=job.expires_at,
        )


def queue_entry(job: Job, card: CardIdentity, at: datetime) -> LedgerEntry:
    """The decline a job was queued after, as attempt 0: a decline for Mastercard's counts,
    not a Visa reattempt; with the network's codes it came with (`job.advice`: a MAC's wait
    or block, a Visa category 1 block hold from it, for this job and the card's others)."""
    advice = job.advice
    return LedgerEntry(
        at,
        card.written_under,
        card.network,
        EntryKind.DECLINE,
        network_advice_code=advice.network_advice_code if advice else None,
        network_decline_code=advice.network_decline_code if advice else None,
        job_id=job.id,
        attempt_number=0,
    )


def failure_history(job: Job, number: int, result: AttemptResult, at: datetime) -> CardHistory:
    """A history of one decline, for a job with no card identity (no ledger is kept for it):
    the failure of attempt `number` with the network's codes it came with, so a MAC's wait or a
    never-retry code still holds for the retry that follows. Never stored; keyed by the job's
    user, who stands for the card nobody named."""
    key = CardKey(KeyKind.CUSTOMER, job.user_id)
    network = Network.of(job.card_network or result.card_network)
    entry = LedgerEntry(
        at,
        key,
        network,
        EntryKind.DECLINE,
        network_advice_code=result.network_advice_code,
        network_decline_code=result.network_decline_code,
        job_id=job.id,
        attempt_number=number,
    )
    return CardHistory(key, network, (entry,))


class CardPool:
    """Ledger entries gathered for several jobs at once (a claim's batch, a queue file), by the
    key each was written under, and the links between payment methods and their cards. A job's
    history is the entries of all its keys, and what the jobs before it in the batch added."""

    def __init__(self, links: Mapping[str, str] | None = None) -> None:
        self.links: dict[str, str] = {}  # payment method key -> card key
        self._methods: dict[str, set[str]] = {}  # card key -> its payment methods' keys
        self._by_key: dict[str, dict[tuple[str | None, int | None], LedgerEntry]] = {}
        self._known: dict[CardIdentity, frozenset[str]] = {}
        for method, card in (links or {}).items():
            self.link(method, card)

    def add(self, entry: LedgerEntry, key: str | None = None) -> None:
        """`key`: the entry's key as text, when the caller has it (the claim's hot path)."""
        found = self._by_key.get(key or str(entry.card))
        if found is None:
            found = self._by_key[key or str(entry.card)] = {}
        found[(entry.job_id, entry.attempt_number)] = entry

    def link(self, method_key: str, card_key: str) -> None:
        old = self.links.get(method_key)
        if old == card_key:
            return
        if old is not None:
            self._methods[old].discard(method_key)
        self.links[method_key] = card_key
        self._methods.setdefault(card_key, set()).add(method_key)
        self._known.clear()

    def remember(self, keys: Mapping[CardIdentity, frozenset[str]]) -> None:
        """`keys_of` worked out already for these cards (a claim's batch); forgotten as soon
        as a link changes."""
        self._known = dict(keys)

    def keys_of(self, card: CardIdentity) -> frozenset[str]:
        """Every key the card's entries may be under: its own, its card's (through its payment
        method's link), and every payment method linked to that card."""
        known = self._known.get(card)
        if known is not None:
            return known
        own = card.own_keys
        cards = {self.links[k] for k in own if k in self.links}
        if card.key.kind is KeyKind.CARD:
            cards.add(str(card.key))
        if not cards:
            return own
        keys = set(own)
        for each in cards:
            keys.add(each)
            keys |= self._methods.get(each, set())
        return frozenset(keys)

    def history(self, card: CardIdentity, keys: frozenset[str] | None = None) -> CardHistory:
        """The card's entries, in no particular order (the check orders them itself); `keys`:
        `keys_of(card)`, when the caller has it."""
        keys = self.keys_of(card) if keys is None else keys
        if len(keys) == 1:
            (key,) = keys
            entries = tuple(self._by_key.get(key, {}).values())
        else:
            found: dict[tuple[str | None, int | None], LedgerEntry] = {}
            for key in keys:
                found.update(self._by_key.get(key, {}))
            entries = tuple(found.values())
        return CardHistory(card.written_under, card.network, entries)


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
    """What an attempt's outcome writes to the card ledger, in the outcome's transaction: the
    attempt's entry as its claim wrote it (`sent`; None when the claim wrote none), settled to
    `entry` (None: nothing was sent, the entry goes), and the card the processor named
    (`learnt`), which the job takes and its payment method is linked to."""

    job_id: str
    number: int
    sent: LedgerEntry | None
    entry: LedgerEntry | None
    learnt: tuple[CardKey, Network, str] | None = None


def settle(
    job: Job, number: int, card: CardHistory | None, result: AttemptResult, at: datetime
) -> LedgerSettle | None:
    """None when there is nothing to write: a job with no card identity whose processor named
    no card either (the fast path)."""
    learnt = learnt_card(job, result)
    if card is None and learnt is None:
        return None
    sent = card.entry_of(job.id, number) if card is not None else None
    kind = ledger_kind(result)
    if kind is None:
        return LedgerSettle(job.id, number, sent, None, learnt)
    reported = Network.of(result.card_network)
    network = reported if reported is not Network.UNKNOWN else Network.UNKNOWN
    if card is not None and network is Network.UNKNOWN:
        network = card.network
    if sent is not None:
        key = sent.card  # settled where it was written: entries never move
    elif card is not None:
        key = card.key
    else:
        assert learnt is not None
        key = learnt[0]
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
    return LedgerSettle(job.id, number, sent, entry, learnt)


def after_outcome(card: CardHistory, settled: LedgerSettle) -> CardHistory:
    """The history the next retry is decided on: the attempt's entry as settled."""
    if settled.entry is None:
        return card.without(settled.job_id, settled.number)
    return card.with_entry(settled.entry, settled.entry.network)


def hold_reason(number: int, verdict: Verdict) -> str:
    """Why a claimed job was not attempted, in a sentence with the rule's source."""
    why = f"{verdict.reason} (source: {verdict.source})"
    if verdict.blocked:
        text = f"blocked by a card-network rule before attempt {number}: {why}"
    else:
        text = f"attempt {number} postponed by a card-network rule: {why}"
    return text[:REASON_LIMIT]
