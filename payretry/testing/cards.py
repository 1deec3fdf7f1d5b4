"""The card ledger of the in-memory store, with the SQL store's rules (payretry/store/cards.py):
entries under the key each was written with, never moved, settled in place (its time sent kept,
the time its answer came back counted); links from payment methods to their cards; the claim's
check under the one lock (which serialises claims, as BEGIN IMMEDIATE or PostgreSQL's advisory
locks do); its own purge, apart from the jobs'. The decisions are the domain's
(payretry/domain/card_checks.py), as in SQL."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from payretry.domain.card_checks import (
    CardIdentity,
    CardPool,
    LedgerSettle,
)
from payretry.domain.card_ledger import CardKey, EntryKind, KeyKind, LedgerEntry, Network
from payretry.domain.claim_checks import CardCheck, check_claims
from payretry.domain.models import Job
from payretry.domain.network_rules import NetworkRules
from payretry.testing._base import Tables, aware

_SETTLE_MARGIN = timedelta(days=1)  # as the SQL store reads: entries settled late count


@dataclass
class _Entry:
    """A stored entry: its key as written, when it was sent (never changed), and the entry as a
    read gives it back (its time: when its answer came back, once settled)."""

    key: str
    sent_at: datetime
    entry: LedgerEntry


class CardsMixin(Tables):
    """The CardLedger port, and what the store's changes write to the ledger."""

    def __init__(self) -> None:
        super().__init__()
        self._ledger: dict[int, _Entry] = {}  # by id, in the order written
        self._links: dict[str, str] = {}  # payment method key -> card key
        self._next_ledger = 1

    # -- reads -----------------------------------------------------------------------------

    def _pool(self, cards: Sequence[CardIdentity], since: datetime) -> CardPool:
        pool = CardPool()
        methods = {c.method_key for c in cards if c.method_key is not None}
        found = {str(c.key) for c in cards if c.key.kind is KeyKind.CARD}
        found |= {self._links[m] for m in methods if m in self._links}
        for method, card in self._links.items():
            if card in found:
                pool.link(method, card)
        keys = {key for card in cards for key in pool.keys_of(card)}
        for stored in self._ledger.values():
            if stored.key in keys and stored.sent_at > since - _SETTLE_MARGIN:
                pool.add(stored.entry, stored.key)
        return pool

    def card_history(self, key: CardKey, since: datetime) -> list[LedgerEntry]:
        method = key.value if key.kind is KeyKind.PAYMENT_METHOD else None
        card = CardIdentity(key, Network.UNKNOWN, payment_method=method)
        with self._tx("card_history"):
            return list(self._pool([card], aware(since)).history(card).entries)

    def card_pool(self, cards: Sequence[CardIdentity], since: datetime) -> CardPool:
        with self._tx("card_pool"):
            return self._pool(cards, aware(since))

    def purge_card_ledger(self, before: datetime, *, dry_run: bool = False) -> int:
        """Entries sent before `before` (the ledger's retention, not the jobs')."""
        before = aware(before)
        with self._tx("purge_card_ledger"):
            old = [i for i, stored in self._ledger.items() if stored.sent_at < before]
            if not dry_run:
                for i in old:
                    del self._ledger[i]
            return len(old)

    # -- writes (under the caller's lock, planned before anything is applied) ---------------

    def _add_entries(self, entries: Iterable[LedgerEntry]) -> None:
        for entry in entries:
            key = str(entry.card)
            self._ledger[self._next_ledger] = _Entry(key, aware(entry.at), entry)
            self._next_ledger += 1

    def _add_links(self, links: Iterable[tuple[str, str]]) -> None:
        self._links.update(links)

    def _check_claims(
        self, jobs: Sequence[Job], now: datetime, rules: NetworkRules
    ) -> tuple[list[CardCheck], list[LedgerEntry]]:
        """As the SQL claim checks: the same domain check over the twin's pool."""
        return check_claims(jobs, now, rules, self._pool)

    def _find(self, sent: LedgerEntry) -> int | None:
        """An entry by its key and time sent, then its job and attempt."""
        key, at = str(sent.card), aware(sent.at)
        for i, stored in self._ledger.items():
            e = stored.entry
            if (
                stored.key == key
                and stored.sent_at == at
                and e.job_id == sent.job_id
                and e.attempt_number == sent.attempt_number
            ):
                return i
        return None

    def _settle_entries(self, settles: Sequence[tuple[LedgerSettle, Job]]) -> dict[str, Job]:
        """Outcomes in the ledger (as the SQL finish does); the jobs that learnt their card,
        as they are now, by id."""
        learnt: dict[str, Job] = {}
        for s, job in settles:
            if s.learnt is not None:
                key, network, fingerprint = s.learnt
                if job.refs.payment_method:
                    method = f"{KeyKind.PAYMENT_METHOD.value}:{job.refs.payment_method}"
                    self._links[method] = str(key)
                learnt[job.id] = replace(
                    job, card_network=network.value, card_fingerprint=fingerprint
                )
            found = self._find(s.sent) if s.sent is not None else None
            if s.entry is None:
                if found is not None:
                    del self._ledger[found]
            elif found is None:
                if s.sent is None:
                    self._add_entries([s.entry])
            else:
                stored = self._ledger[found]
                settled = replace(s.entry, card=stored.entry.card)
                self._ledger[found] = _Entry(stored.key, stored.sent_at, settled)
        return learnt

    def _unclaim(self, claimed_entries: Iterable[LedgerEntry]) -> None:
        for sent in claimed_entries:
            if sent.kind is not EntryKind.ATTEMPT:
                continue
            found = self._find(sent)
            if found is not None and self._ledger[found].entry.kind is EntryKind.ATTEMPT:
                del self._ledger[found]
