"""The card ledger in SQL (table card_ledger): written inside the transactions of the changes
that make its entries (a queue, a claim, an outcome), read by the claim's check, by the queue
and by `payretry card`, and purged on its own retention.

The claim's check reads a card's ledger and then writes the attempt's entry; two claims on the
same card must not interleave there, or both could take the card's last allowed slot. SQLite's
BEGIN IMMEDIATE already serialises every writer. On PostgreSQL each claim that touches cards
takes a transaction-scoped advisory lock per card (in one global order, so two claims never
deadlock) before it reads: a second claim on the same card waits for the first to commit, and
its read (a new statement, so a new snapshot under READ COMMITTED) then sees the slot taken.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Connection, bindparam, func, or_, select, text, update

from payretry.domain.card_checks import (
    CardHistory,
    CardIdentity,
    CardPool,
    LedgerSettle,
    attempt_entry,
    claim_verdict,
    job_card,
)
from payretry.domain.card_ledger import CardKey, EntryKind, Initiator, KeyKind, LedgerEntry, Network
from payretry.domain.changes import Held
from payretry.domain.models import Job
from payretry.domain.network_rules import NetworkRules
from payretry.store.tables import CARD_LEDGER, JOBS

_CHUNK = 500
_CODE = 8  # the code columns' width
# pg_advisory_xact_lock(space, key): the space keeps card locks apart from any other lock.
_LOCK_SPACE = 0x70617972
_LOCK = text("SELECT pg_advisory_xact_lock(:space, :key)")


class _HasTx(Protocol):
    dialect: str

    def _tx(self, *, readonly: bool = False) -> AbstractContextManager[Connection]: ...


def _code(value: str | None) -> str | None:
    return value[:_CODE] if value else None


def entry_values(entry: LedgerEntry, payment_method: str | None) -> dict[str, Any]:
    return {
        "card_key": str(entry.card),
        "payment_method": payment_method,
        "at": entry.at,
        "network": entry.network.value,
        "kind": entry.kind.value,
        "initiated_by": entry.initiated_by.value,
        "network_advice_code": _code(entry.network_advice_code),
        "network_decline_code": _code(entry.network_decline_code),
        "job_id": entry.job_id or "",
        "attempt_number": entry.attempt_number if entry.attempt_number is not None else -1,
    }


class _Keys:
    """Card keys as read back: each distinct text parsed once."""

    def __init__(self, known: Iterable[CardKey] = ()) -> None:
        self.known = {str(key): key for key in known}

    def __call__(self, text_key: str) -> CardKey:
        found = self.known.get(text_key)
        if found is None:
            found = self.known[text_key] = CardKey.parse(text_key)
        return found


def _entry(row: Any, keys: _Keys) -> LedgerEntry:
    r = row._mapping
    return LedgerEntry(
        r["at"],
        keys(r["card_key"]),
        Network(r["network"]),
        EntryKind(r["kind"]),
        Initiator(r["initiated_by"]),
        r["network_advice_code"],
        r["network_decline_code"],
        r["job_id"],
        r["attempt_number"],
    )


def lock_cards(conn: Connection, keys: Iterable[str]) -> None:
    """PostgreSQL: hold each card's advisory lock until the transaction ends, taken in the
    order of their hashes (one global order: no deadlock between two claims)."""
    if conn.dialect.name != "postgresql":
        return  # SQLite: BEGIN IMMEDIATE already holds the database's one write lock
    hashes = sorted({_hash(key) for key in keys})
    if hashes:
        conn.execute(_LOCK, [{"space": _LOCK_SPACE, "key": h} for h in hashes])


def _hash(key: str) -> int:
    """A signed 32-bit hash (two cards sharing one only wait for each other, never more)."""
    value = zlib.crc32(key.encode())
    return value - 2**32 if value >= 2**31 else value


def _rows(conn: Connection, column: Any, values: Sequence[str], since: datetime) -> list[Any]:
    rows: list[Any] = []
    for start in range(0, len(values), _CHUNK):
        rows += conn.execute(
            select(CARD_LEDGER).where(
                column.in_(values[start : start + _CHUNK]), CARD_LEDGER.c.at > since
            )
        ).all()
    return rows


def read_pool(conn: Connection, cards: Sequence[CardIdentity], since: datetime) -> CardPool:
    """The entries newer than `since` of these cards: by their keys, and by their payment
    methods (entries written for a method under its card's key)."""
    pool = CardPool()
    keys = list(dict.fromkeys(str(card.key) for card in cards))
    methods = list(dict.fromkeys(c.payment_method for c in cards if c.payment_method))
    seen: set[int] = set()
    parse = _Keys(card.key for card in cards)
    for row in [
        *_rows(conn, CARD_LEDGER.c.card_key, keys, since),
        *_rows(conn, CARD_LEDGER.c.payment_method, methods, since),
    ]:
        if row.id not in seen:
            seen.add(row.id)
            pool.add(_entry(row, parse), row.payment_method)
    return pool


def insert_entries(
    conn: Connection,
    insert: Callable[..., Any],
    entries: Sequence[tuple[LedgerEntry, str | None]],
) -> None:
    """New entries (each with the payment method it was sent with); one already there for
    the same job and attempt is kept (a re-send)."""
    if entries:
        conn.execute(
            insert(CARD_LEDGER).on_conflict_do_nothing(index_elements=["job_id", "attempt_number"]),
            [entry_values(e, method) for e, method in entries],
        )


CardCheck = CardHistory | Held | None


def check_claims(
    conn: Connection, jobs: Sequence[Job], now: datetime, rules: NetworkRules
) -> tuple[list[CardCheck], list[tuple[LedgerEntry, str | None]]]:
    """The claim's check, in the claim's transaction: for each claimed job, None (no card:
    attempted as it is), its card's history with this attempt's entry in it (attempted), or a
    Held (postponed or blocked instead); and the attempt entries to write. Jobs are checked
    in claim order, each seeing the slots the ones before it took."""
    cards = [job_card(job) for job in jobs]
    if not any(cards):
        return [None] * len(jobs), []  # the fast path: no card identity, no ledger read
    known = [card for card in cards if card is not None]
    lock_cards(conn, (lock for card in known for lock in card.locks))
    pool = read_pool(conn, known, now - rules.lookback)
    checks: list[CardCheck] = []
    new: list[tuple[LedgerEntry, str | None]] = []
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
            pool.add(entry, card.payment_method)
            new.append((entry, card.payment_method))
            checks.append(history.with_entry(entry))
    return checks, new


def hold(conn: Connection, held: Sequence[Held], token: str) -> None:
    """Held jobs, as the domain left them: scheduled later or blocked, lease given back."""
    if held:
        conn.execute(
            update(JOBS)
            .where(JOBS.c.seq == bindparam("b_seq"), JOBS.c.lease_token == token)
            .values(
                state=bindparam("b_state"),
                next_retry_at=bindparam("b_next"),
                reason=bindparam("b_reason"),
                network_rule=bindparam("b_rule"),
                lease_token=None,
                lease_expires_at=None,
                updated_at=bindparam("b_at"),
            ),
            [
                {
                    "b_seq": h.job.seq,
                    "b_state": h.job.state.value,
                    "b_next": h.job.next_retry_at,
                    "b_reason": h.job.reason,
                    "b_rule": h.job.network_rule,
                    "b_at": h.at,
                }
                for h in held
            ],
        )


def apply_settles(
    conn: Connection, insert: Callable[..., Any], settles: Sequence[tuple[LedgerSettle, Job]]
) -> None:
    """Attempts' outcomes in the card ledger, in the outcomes' transaction: each attempt's
    entry settled (or written, if the claim left none), or removed when nothing was sent. A
    card the processor named moves the job to that card's key, with its entries and every
    entry of its payment method (a payment method is one card)."""
    learnt = [(s, job) for s, job in settles if s.learnt is not None]
    if learnt:
        lock_cards(conn, (str(s.learnt[0]) for s, _ in learnt if s.learnt is not None))
        conn.execute(
            update(CARD_LEDGER)
            .where(
                or_(
                    CARD_LEDGER.c.job_id == bindparam("b_job"),
                    CARD_LEDGER.c.payment_method == bindparam("b_method"),
                )
            )
            .values(card_key=bindparam("b_key"), network=bindparam("b_network")),
            [
                {
                    "b_job": s.job_id,
                    "b_method": job.refs.payment_method,
                    "b_key": str(s.learnt[0]),
                    "b_network": s.learnt[1].value,
                }
                for s, job in learnt
                if s.learnt is not None
            ],
        )
        conn.execute(
            update(JOBS)
            .where(JOBS.c.id == bindparam("b_job"))
            .values(card_network=bindparam("b_network"), card_fingerprint=bindparam("b_fp")),
            [
                {"b_job": s.job_id, "b_network": s.learnt[1].value, "b_fp": s.learnt[2]}
                for s, _ in learnt
                if s.learnt is not None
            ],
        )
    gone = [s for s, _ in settles if s.entry is None]
    if gone:
        conn.execute(
            CARD_LEDGER.delete().where(
                CARD_LEDGER.c.job_id == bindparam("b_job"),
                CARD_LEDGER.c.attempt_number == bindparam("b_number"),
            ),
            [{"b_job": s.job_id, "b_number": s.number} for s in gone],
        )
    settled = [(s.entry, job.refs.payment_method) for s, job in settles if s.entry is not None]
    if settled:
        stmt = insert(CARD_LEDGER)
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=["job_id", "attempt_number"],
                set_={
                    name: stmt.excluded[name]
                    for name in (
                        "card_key",
                        "at",
                        "network",
                        "kind",
                        "network_advice_code",
                        "network_decline_code",
                    )
                },
            ),
            [entry_values(e, method) for e, method in settled],
        )


def unclaim(conn: Connection, released: Sequence[tuple[str, int, datetime]]) -> None:
    """Attempts given back unsent: the entries their claim wrote go (a re-sent attempt keeps
    the one its first send wrote). Run where the lease fence already holds."""
    if released:
        conn.execute(
            CARD_LEDGER.delete().where(
                CARD_LEDGER.c.job_id == bindparam("b_job"),
                CARD_LEDGER.c.attempt_number == bindparam("b_number"),
                CARD_LEDGER.c.kind == EntryKind.ATTEMPT.value,
                CARD_LEDGER.c.at == bindparam("b_at"),
            ),
            [{"b_job": j, "b_number": n, "b_at": at} for j, n, at in released],
        )


class CardLedgerMixin:
    """The CardLedger port (payretry/domain/ports.py)."""

    def card_history(self: _HasTx, key: CardKey, since: datetime) -> list[LedgerEntry]:
        method = key.value if key.kind is KeyKind.PAYMENT_METHOD else None
        card = CardIdentity(key, Network.UNKNOWN, method)
        with self._tx(readonly=True) as conn:
            return list(read_pool(conn, [card], since).history(card).entries)

    def card_pool(self: _HasTx, cards: Sequence[CardIdentity], since: datetime) -> CardPool:
        with self._tx(readonly=True) as conn:
            return read_pool(conn, cards, since)

    def purge_card_ledger(self: _HasTx, before: datetime, *, dry_run: bool = False) -> int:
        old = CARD_LEDGER.c.at < before
        if dry_run:
            with self._tx(readonly=True) as conn:
                return int(conn.execute(select(func.count()).where(old)).scalar_one())
        removed = 0
        while True:  # short transactions, as the jobs' purge
            with self._tx() as conn:
                ids = list(
                    conn.execute(select(CARD_LEDGER.c.id).where(old).limit(_CHUNK)).scalars()
                )
                if not ids:
                    return removed
                conn.execute(CARD_LEDGER.delete().where(CARD_LEDGER.c.id.in_(ids)))
                removed += len(ids)
