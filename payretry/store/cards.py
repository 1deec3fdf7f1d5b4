"""The card ledger in SQL: written inside the transactions of the changes that make its entries
(a queue, a claim, an outcome, a release), read by the claim's check, by the queue and by
`payretry card`, and purged on its own retention.

Tables (migration 0007): `card_ledger`, one row per authorization under the key it was written
with (a job's payment method's, else its card's or customer's), indexed only by (key, time
sent) so each entry costs one index; `card_links`, one row per payment method whose card is
known (a decline named it, or the queue gave both), which joins the method's entries to the
card's. Entries never move: an outcome settles its attempt's row in place (kind, codes and the
time it came back, none of them indexed), found by its key and time sent.

The claim's check reads a card's ledger and then writes the attempt's entry; two claims on the
same card must not interleave there, or both could take the card's last allowed slot. SQLite's
BEGIN IMMEDIATE already serialises every writer. On PostgreSQL each claim that touches cards
takes a transaction-scoped advisory lock per key it reads (in one global order, so two claims
never deadlock) before it reads; a second claim on the same card waits for the first to commit,
and its read (a new statement, so a new snapshot under READ COMMITTED) then sees the slot taken.
A link found once the locks are held widens the set: its keys are locked too, and read.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import Connection, Engine, bindparam, func, select, update

from payretry.domain import claim_checks
from payretry.domain.card_checks import (
    CardIdentity,
    CardPool,
    LedgerSettle,
)
from payretry.domain.card_ledger import CardKey, EntryKind, Initiator, KeyKind, LedgerEntry, Network
from payretry.domain.changes import Held
from payretry.domain.claim_checks import CardCheck
from payretry.domain.models import Job
from payretry.domain.network_rules import NetworkRules
from payretry.store.bulk import Arrays
from payretry.store.engine import purge_batches
from payretry.store.tables import CARD_LEDGER, CARD_LINKS, JOBS

_CHUNK = 500
_CODE = 8  # the code columns' width
# An entry is indexed by when it was sent (`at`, never changed); its outcome's time
# (`settled_at`: when a decline came back, what a MAC's wait counts from) is not. A read reaches
# this much further back for entries settled late (a re-send after a crash), counted by their
# settled time.
_SETTLE_MARGIN = timedelta(days=1)
# pg_advisory_xact_lock(space, key): the space keeps card locks apart from any other lock.
_LOCK_SPACE = 0x70617972
# Every key of a batch in one statement: the function scan yields the array in its order and
# each row's lock is taken as the row is produced (no sort, no parallel plan for a volatile
# function), so the locks are taken in the order of the array given.
_LOCK = "SELECT count(pg_advisory_xact_lock(%(space)s, k)) FROM unnest(%(keys)b::integer[]) AS k"


class _HasTx(Protocol):
    dialect: str
    engine: Engine

    def _tx(self, *, readonly: bool = False) -> AbstractContextManager[Connection]: ...


def _code(value: str | None) -> str | None:
    return value[:_CODE] if value else None


class _Keys:
    """Card keys as read back: each distinct text made once. Stored keys were checked on their
    way in (card_key(), CardKey.parse), so they are split here, not parsed again."""

    def __init__(self) -> None:
        self.known: dict[str, CardKey] = {}

    def __call__(self, text_key: str) -> CardKey:
        found = self.known.get(text_key)
        if found is None:
            kind, _, value = text_key.partition(":")
            found = self.known[text_key] = CardKey(_KEY_KINDS[kind], value)
        return found


_KEY_KINDS = {k.value: k for k in KeyKind}
_NETWORKS = {n.value: n for n in Network}
_KINDS = {k.value: k for k in EntryKind}
_INITIATORS = {i.value: i for i in Initiator}
# The read of the claim's hot path, straight to the driver (as store/bulk.py writes): the
# columns in this order, `card_key IN (...)` with one placeholder per key, `at > ?`.
_READ = (
    "card_key",
    "at",
    "settled_at",
    "network",
    "kind",
    "initiated_by",
    "network_advice_code",
    "network_decline_code",
    "job_id",
    "attempt_number",
)
_reads: dict[tuple[str, int], tuple[str, bool]] = {}


def _read_sql(conn: Connection, n: int) -> tuple[str, bool]:
    """The read's SQL for `n` keys, and whether the driver takes its values positionally."""
    found = _reads.get((conn.dialect.name, n))
    if found is None:
        stmt = select(*(CARD_LEDGER.c[name] for name in _READ)).where(
            CARD_LEDGER.c.card_key.in_([bindparam(f"k{i}") for i in range(n)]),
            CARD_LEDGER.c.at > bindparam("since"),
        )
        compiled = stmt.compile(dialect=conn.dialect)
        positional = bool(compiled.positional)
        if positional:
            assert list(compiled.positiontup or []) == [*(f"k{i}" for i in range(n)), "since"]
        found = _reads[(conn.dialect.name, n)] = (compiled.string, positional)
    return found


def _when(value: Any) -> datetime:
    """A stored time, aware UTC (SQLite hands back its text; PostgreSQL a datetime)."""
    if isinstance(value, str):
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    assert isinstance(value, datetime)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _read_entries(
    conn: Connection, texts: Sequence[str], since: datetime, keys: _Keys
) -> list[tuple[str, LedgerEntry]]:
    """(key as stored, entry) for every entry under these keys sent after `since`."""
    limit = _time(conn)(since)
    found: list[tuple[str, LedgerEntry]] = []
    for start in range(0, len(texts), _CHUNK):
        chunk = texts[start : start + _CHUNK]
        sql, positional = _read_sql(conn, len(chunk))
        values: Any = (
            (*chunk, limit)
            if positional
            else {**{f"k{i}": key for i, key in enumerate(chunk)}, "since": limit}
        )
        rows = conn.exec_driver_sql(sql, values)
        for key, at, settled, network, kind, who, mac, code, job, number in rows:
            entry = LedgerEntry(
                _when(settled if settled is not None else at),
                keys(key),
                _NETWORKS[network],
                _KINDS[kind],
                _INITIATORS[who],
                mac,
                code,
                job,
                number,
            )
            found.append((key, entry))
    return found


# -- locks and reads --------------------------------------------------------------------------


def _hash(key: str) -> int:
    """A signed 32-bit hash (two keys sharing one only wait for each other, never more)."""
    value = zlib.crc32(key.encode())
    return value - 2**32 if value >= 2**31 else value


def lock_keys(conn: Connection, keys: Iterable[str]) -> None:
    """PostgreSQL: hold each key's advisory lock until the transaction ends, taken in the order
    of their hashes (one global order: no deadlock between two claims)."""
    if conn.dialect.name != "postgresql":
        return  # SQLite: BEGIN IMMEDIATE already holds the database's one write lock
    hashes = sorted({_hash(key) for key in keys})
    if hashes:
        conn.exec_driver_sql(_LOCK, {"space": _LOCK_SPACE, "keys": hashes})


_LINKS_OF_METHODS = "SELECT card_key FROM card_links WHERE method_key IN ({marks})"
_LINKS_OF_CARDS = "SELECT method_key, card_key FROM card_links WHERE card_key IN ({marks})"


def _raw(conn: Connection, sql: str, values: Sequence[str]) -> Any:
    """A read with one placeholder per value, straight to the driver."""
    marks = ", ".join([_mark(conn)] * len(values))
    return conn.exec_driver_sql(sql.format(marks=marks), tuple(values))


def _read_links(conn: Connection, pool: CardPool, cards: Sequence[CardIdentity]) -> None:
    """Every link that joins one of these cards' keys to a card, and every other payment
    method of those cards, into the pool (a payment method names one card, so one hop reaches
    all of its card's methods): the methods' own links by the table's primary key, then every
    link of the cards found, and of the keys that are cards, by its card index."""
    methods = sorted({c.method_key for c in cards if c.method_key is not None})
    found = {str(c.key) for c in cards if c.key.kind is KeyKind.CARD}
    for start in range(0, len(methods), _CHUNK):
        found.update(k for (k,) in _raw(conn, _LINKS_OF_METHODS, methods[start : start + _CHUNK]))
    ask = sorted(found)
    for start in range(0, len(ask), _CHUNK):
        for method_key, card_key in _raw(conn, _LINKS_OF_CARDS, ask[start : start + _CHUNK]):
            pool.link(method_key, card_key)


def _keys(pool: CardPool, cards: Sequence[CardIdentity]) -> dict[CardIdentity, frozenset[str]]:
    """Each card's keys (what a claim locks and reads)."""
    return {card: pool.keys_of(card) for card in cards}


def _union(keys: dict[CardIdentity, frozenset[str]]) -> set[str]:
    return {key for each in keys.values() for key in each}


def read_pool(
    conn: Connection, cards: Sequence[CardIdentity], since: datetime, *, lock: bool = False
) -> CardPool:
    """The links and the entries (newer than `since`) of these cards. With `lock`, every key
    read is locked first (PostgreSQL), and the links read again under the locks: a link made
    meanwhile widens the set, whose new keys are locked and read too."""
    pool = CardPool()
    _read_links(conn, pool, cards)
    each = _keys(pool, cards)
    keys = _union(each)
    if lock and conn.dialect.name == "postgresql":
        locked: set[str] = set()
        while keys - locked:
            lock_keys(conn, keys - locked)
            locked |= keys
            _read_links(conn, pool, cards)
            each = _keys(pool, cards)
            keys = _union(each)
    for key, entry in _read_entries(conn, sorted(keys), since - _SETTLE_MARGIN, _Keys()):
        pool.add(entry, key)
    pool.remember(each)
    return pool


# -- writes -----------------------------------------------------------------------------------


_INSERT = (
    "INSERT INTO card_ledger (card_key, at, network, kind, initiated_by, network_advice_code, "
    "network_decline_code, job_id, attempt_number) VALUES ({marks})"
)
_UPDATE = (
    "UPDATE card_ledger SET kind = {m}, settled_at = {m}, network = {m}, "
    "network_advice_code = {m}, network_decline_code = {m} "
    "WHERE card_key = {m} AND at = {m} AND job_id = {m} AND attempt_number = {m}"
)

# PostgreSQL: a batch's entries, and its settlements, as one statement each (bulk.Arrays).
_ENTRY = [
    "card_key",
    "at",
    "network",
    "kind",
    "initiated_by",
    "network_advice_code",
    "network_decline_code",
    "job_id",
    "attempt_number",
]
_SETTLED = [
    "kind",
    "settled_at",
    "network",
    "network_advice_code",
    "network_decline_code",
    "card_key",
    "at",
    "job_id",
    "attempt_number",
]
_PG_UPDATE = (
    "UPDATE card_ledger AS c SET kind = v.kind, settled_at = v.settled_at,"
    " network = v.network, network_advice_code = v.network_advice_code,"
    " network_decline_code = v.network_decline_code FROM {rows}"
    " WHERE c.card_key = v.card_key AND c.at = v.at AND c.job_id = v.job_id"
    " AND c.attempt_number = v.attempt_number"
)


def _as_arrays(
    conn: Connection,
    key: str,
    sql: str | None,
    names: Sequence[str],
    rows: Sequence[tuple[Any, ...]],
) -> bool:
    """PostgreSQL: run `sql` (None: an insert of `names`) over the rows as arrays; False
    elsewhere (the caller goes row by row). The rows' times are already bound, and binding an
    aware UTC time again is a no-op."""
    if conn.dialect.name != "postgresql":
        return False
    named = [dict(zip(names, row, strict=True)) for row in rows]
    if sql is None:
        statement = Arrays.insert(key, conn.dialect, CARD_LEDGER, names)
    else:
        binds = [(name, CARD_LEDGER.c[name]) for name in names]
        statement = Arrays.of(key, conn.dialect, sql, binds)
    statement.run(conn, named)
    return True


def _mark(conn: Connection) -> str:
    return "?" if conn.dialect.paramstyle == "qmark" else "%s"


def _time(conn: Connection) -> Callable[[datetime], Any]:
    """How the store binds a time on this database (store/tables.py UTCDateTime)."""
    bind = CARD_LEDGER.c.at.type.bind_processor(conn.dialect)
    return bind if bind is not None else (lambda value: value)


def insert_entries(conn: Connection, entries: Sequence[LedgerEntry]) -> None:
    """New entries, straight to the driver (a claim writes one per attempt)."""
    if not entries:
        return
    when = _time(conn)
    rows = [
        (
            str(e.card),
            when(e.at),
            str(e.network),  # a StrEnum: its value
            str(e.kind),
            str(e.initiated_by),
            _code(e.network_advice_code),
            _code(e.network_decline_code),
            e.job_id or "",
            e.attempt_number if e.attempt_number is not None else -1,
        )
        for e in entries
    ]
    if not _as_arrays(conn, "insert_ledger", None, _ENTRY, rows):
        conn.exec_driver_sql(_INSERT.format(marks=", ".join([_mark(conn)] * 9)), rows)


def write_links(
    conn: Connection, insert: Callable[..., Any], links: Iterable[tuple[str, str]]
) -> None:
    """A payment method's card, known now: (method key, card key). A method names one card;
    a later answer replaces an earlier one."""
    found = dict(links)
    if found:
        stmt = insert(CARD_LINKS)
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=["method_key"], set_={"card_key": stmt.excluded.card_key}
            ),
            [{"method_key": m, "card_key": c} for m, c in sorted(found.items())],
        )


def check_claims(
    conn: Connection, jobs: Sequence[Job], now: datetime, rules: NetworkRules
) -> tuple[list[CardCheck], list[LedgerEntry]]:
    """The claim's check (domain/claim_checks.py), in the claim's transaction: the pool is
    read with its cards' rows locked."""
    return claim_checks.check_claims(
        jobs, now, rules, lambda cards, since: read_pool(conn, cards, since, lock=True)
    )


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


def _where_sent() -> tuple[Any, ...]:
    """An entry by its key and time sent (the index), then its job and attempt."""
    return (
        CARD_LEDGER.c.card_key == bindparam("b_key"),
        CARD_LEDGER.c.at == bindparam("b_at"),
        CARD_LEDGER.c.job_id == bindparam("b_job"),
        CARD_LEDGER.c.attempt_number == bindparam("b_number"),
    )


def _sent(entry: LedgerEntry) -> dict[str, Any]:
    return {
        "b_key": str(entry.card),
        "b_at": entry.at,
        "b_job": entry.job_id or "",
        "b_number": entry.attempt_number,
    }


def apply_settles(
    conn: Connection, insert: Callable[..., Any], settles: Sequence[tuple[LedgerSettle, Job]]
) -> None:
    """Attempts' outcomes in the card ledger, in the outcomes' transaction: each attempt's
    entry settled in place to a decline or an approval, or removed when nothing was sent (an
    outcome whose claim wrote none, a job that had no card until this answer named it, is
    written now). A card the processor named: the job takes it, and its payment method is
    linked to it (both keys locked first, as a claim would)."""
    learnt = [(s, job) for s, job in settles if s.learnt is not None]
    if learnt:
        links = [
            (f"{KeyKind.PAYMENT_METHOD.value}:{job.refs.payment_method}", str(s.learnt[0]))
            for s, job in learnt
            if s.learnt is not None and job.refs.payment_method
        ]
        lock_keys(conn, [key for link in links for key in link])
        write_links(conn, insert, links)
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
    gone = [_sent(s.sent) for s, _ in settles if s.entry is None and s.sent is not None]
    if gone:
        conn.execute(CARD_LEDGER.delete().where(*_where_sent()), gone)
    insert_entries(conn, [s.entry for s, _ in settles if s.sent is None and s.entry is not None])
    when = _time(conn)
    settled = [
        (
            str(s.entry.kind),
            when(s.entry.at),
            str(s.entry.network),
            _code(s.entry.network_advice_code),
            _code(s.entry.network_decline_code),
            str(s.sent.card),
            when(s.sent.at),
            s.sent.job_id or "",
            s.sent.attempt_number,
        )
        for s, _ in settles
        if s.sent is not None and s.entry is not None
    ]
    if not settled:
        return
    # In place, by its key and time sent: none of these columns is indexed. As a set, an entry
    # listed twice would be settled once: such a batch goes row by row, the last one standing.
    unique = len({row[5:] for row in settled}) == len(settled)
    if not (unique and _as_arrays(conn, "settle_ledger", _PG_UPDATE, _SETTLED, settled)):
        conn.exec_driver_sql(_UPDATE.format(m=_mark(conn)), settled)


def settle_elsewhere(conn: Connection, key: str, job_id: str, number: int, at: datetime) -> None:
    """The entry of an attempt in flight when the payment was made elsewhere (a
    payment_intent.succeeded webhook closed it), settled as an approval at `at`, in the
    caller's transaction: the payment succeeded, so it is no possible decline (it stays one
    authorization sent, counted as a reattempt). By the key it was written under (indexed), its
    job and attempt; only while still unsettled."""
    conn.execute(
        update(CARD_LEDGER)
        .where(
            CARD_LEDGER.c.card_key == key,
            CARD_LEDGER.c.job_id == job_id,
            CARD_LEDGER.c.attempt_number == number,
            CARD_LEDGER.c.kind == EntryKind.ATTEMPT.value,
        )
        .values(kind=EntryKind.APPROVAL.value, settled_at=at)
    )


def unclaim(conn: Connection, released: Sequence[LedgerEntry]) -> None:
    """Attempts given back unsent: the entries their claim wrote go (a re-sent attempt keeps
    the one its first send wrote: only an entry sent at this claim's time matches). Run where
    the lease fence already holds."""
    rows = [_sent(e) for e in released if e.kind is EntryKind.ATTEMPT]
    if rows:
        conn.execute(
            CARD_LEDGER.delete().where(
                *_where_sent(), CARD_LEDGER.c.kind == EntryKind.ATTEMPT.value
            ),
            rows,
        )


class CardLedgerMixin:
    """The CardLedger port (payretry/domain/ports.py)."""

    def card_history(self: _HasTx, key: CardKey, since: datetime) -> list[LedgerEntry]:
        if key.kind is KeyKind.PAYMENT_METHOD:
            card = CardIdentity(key, Network.UNKNOWN, payment_method=key.value)
        else:
            card = CardIdentity(key, Network.UNKNOWN)
        with self._tx(readonly=True) as conn:
            return list(read_pool(conn, [card], since).history(card).entries)

    def card_pool(self: _HasTx, cards: Sequence[CardIdentity], since: datetime) -> CardPool:
        with self._tx(readonly=True) as conn:
            return read_pool(conn, cards, since)

    def purge_card_ledger(self: _HasTx, before: datetime, *, dry_run: bool = False) -> int:
        """Entries sent before `before`. Ids follow the time sent (rows are only ever added
        with the time they are written, and never change it), so the oldest are found from the
        first id on, a chunk at a time, with no index of their own."""
        if dry_run:
            with self._tx(readonly=True) as conn:
                return int(
                    conn.execute(select(func.count()).where(CARD_LEDGER.c.at < before)).scalar_one()
                )
        after = 0
        removed = 0
        batches = purge_batches(self.engine)

        def step(size: int) -> int:  # short transactions sized by their hold, as the jobs'
            nonlocal after, removed
            with batches.transaction(self._tx, size) as conn:
                rows = conn.execute(
                    select(CARD_LEDGER.c.id, CARD_LEDGER.c.at)
                    .where(CARD_LEDGER.c.id > after)
                    .order_by(CARD_LEDGER.c.id)
                    .limit(size)
                ).all()
                old = [r.id for r in rows if r.at < before]
                if old:
                    conn.execute(
                        CARD_LEDGER.delete().where(
                            CARD_LEDGER.c.id >= old[0], CARD_LEDGER.c.id <= old[-1]
                        )
                    )
            removed += len(old)
            if len(old) < len(rows) or len(rows) < size:
                return 0
            after = rows[-1].id
            return size

        batches.run(step)
        return removed
