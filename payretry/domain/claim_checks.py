"""The card-network check of a claim, shared by every store: for each claimed job in claim
order, None (no card: attempted as it is), its card's history with this attempt's entry in it
(attempted), or a Held (postponed or blocked instead); and the attempt entries to write. Each
job sees the slots the ones before it took. Pure: the store hands in how to read the pool."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from payretry.domain.card_checks import (
    CardHistory,
    CardIdentity,
    CardPool,
    attempt_entry,
    claim_verdict,
    job_card,
)
from payretry.domain.card_ledger import LedgerEntry
from payretry.domain.changes import Held
from payretry.domain.models import Job
from payretry.domain.network_rules import NetworkRules

CardCheck = CardHistory | Held | None


def check_claims(
    jobs: Sequence[Job],
    now: datetime,
    rules: NetworkRules,
    read_pool: Callable[[list[CardIdentity], datetime], CardPool],
) -> tuple[list[CardCheck], list[LedgerEntry]]:
    """`read_pool(cards, since)`: the cards' ledger since `since` (read only when a job has a
    card identity: the fast path reads nothing)."""
    cards = [job_card(job) for job in jobs]
    if not any(cards):
        return [None] * len(jobs), []
    pool = read_pool([c for c in cards if c is not None], now - rules.lookback)
    checks: list[CardCheck] = []
    new: list[LedgerEntry] = []
    for job, card in zip(jobs, cards, strict=True):
        if card is None:
            checks.append(None)
            continue
        history = pool.history(card)
        number = job.attempt_count + 1
        verdict = claim_verdict(rules, job, number, history, now)
        if verdict is None:  # a re-send: its entry is there already
            checks.append(history)
        elif not verdict.allowed:
            checks.append(Held.of(job, number, verdict, now))
        else:
            entry = attempt_entry(job, number, history, now)
            pool.add(entry, card.ledger_key)
            new.append(entry)
            checks.append(history.plus(entry))
    return checks, new
