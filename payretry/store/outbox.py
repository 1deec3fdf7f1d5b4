"""The event outbox in SQL: one entry per state change, written inside the transaction of the
change (write_entries, on the store's bulk path); entries read back in delivery order; each
sink's progress.

Delivery order. Each sink keeps a cursor, the (txid, seq) of the last entry it took, and takes
the entries after it in (txid, seq) order.

- SQLite: writers are serialised (BEGIN IMMEDIATE), so entries commit in `seq` order and
  `txid` is always 0: the cursor is a plain `seq`, read through the primary key.
  AUTOINCREMENT keeps a purged `seq` from being handed out again.
- PostgreSQL: `seq` comes from a sequence, handed out when a row is inserted, not when its
  transaction commits. A transaction holding seq 7 may commit after another has committed seq
  8; a cursor that went past 8 would never see 7. So every entry records its transaction's id
  (`pg_current_xact_id()`), and a reader takes only entries whose transaction id is below the
  xmin of its own snapshot (`pg_snapshot_xmin(pg_current_snapshot())`): every transaction
  below that is over, committed or rolled back, so no entry can still appear behind the
  cursor. Entries of a transaction in flight wait for it to end (a long transaction elsewhere
  in the cluster delays delivery; it never loses an entry). The price is one bigint per entry
  and no extra write per delivery.

Per-event, per-sink delivery records would have done too, at one more row per event and sink
and an anti-join that grows with the history; a cursor per sink keeps delivery a range scan.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import Connection, Engine, func, literal_column, or_, select, tuple_, update

from payretry.domain.events import EventType, OutboxEntry
from payretry.domain.models import ACTIVE_STATES
from payretry.domain.outbox import Cursor, SinkState
from payretry.store.bulk import Arrays, Bulk
from payretry.store.engine import dialect_insert, purge_batches
from payretry.store.tables import OUTBOX, OUTBOX_SINKS

_COLUMNS = ["job_id", "attempt", "kind", "occurred_at", "data"]
_PG_TXID = "pg_current_xact_id()::text::bigint"
_PG_HORIZON = "pg_snapshot_xmin(pg_current_snapshot())::text::bigint"
_ACTIVE = [state.value for state in ACTIVE_STATES]


# Compact JSON, one encoder for every row (json.dumps with options builds one per call).
_encode = json.JSONEncoder(separators=(",", ":")).encode


def write_entries(conn: Connection, entries: Iterable[OutboxEntry]) -> None:
    """Add outbox entries inside the caller's transaction, on the store's bulk path."""
    _write(
        conn,
        [
            {
                "job_id": e.job_id,
                "attempt": e.attempt,
                "kind": e.kind.value,
                "occurred_at": e.occurred_at,
                "data": _encode(e.data),
            }
            for e in entries
        ],
    )


# PostgreSQL: the batch as one statement (bulk.Arrays); `seq` is drawn in the rows' order.
_PG_INSERT = (
    f"INSERT INTO retry_outbox (txid, {', '.join(_COLUMNS)})"
    f" SELECT {_PG_TXID}, {', '.join(f'v.{c}' for c in _COLUMNS)} FROM {{rows}}"
)


def _write(conn: Connection, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    dialect = conn.dialect
    if dialect.name == "postgresql":
        binds = [(name, OUTBOX.c[name]) for name in _COLUMNS]
        Arrays.of("insert_outbox", dialect, _PG_INSERT, binds).run(conn, rows)
        return
    # SQLite: txid 0 (writers are serialised; see above).
    Bulk.of(
        "insert_outbox", dialect, lambda: OUTBOX.insert().values(txid=0), column_keys=_COLUMNS
    ).run(conn, rows)


def entry_from_row(row: Any) -> OutboxEntry:
    r = row._mapping
    return OutboxEntry(
        job_id=r["job_id"],
        attempt=r["attempt"],
        kind=EventType(r["kind"]),
        occurred_at=r["occurred_at"],
        data=json.loads(r["data"]),
        seq=r["seq"],
        txid=r["txid"],
    )


def _sink_from_row(row: Any) -> SinkState:
    r = row._mapping
    return SinkState(
        name=r["name"],
        cursor=Cursor(r["cursor_txid"], r["cursor_seq"]),
        delivered=r["delivered"],
        failures=r["failures"],
        last_error=r["last_error"],
        retry_at=r["retry_at"],
        lease_token=r["lease_token"],
        lease_expires_at=r["lease_expires_at"],
        updated_at=r["updated_at"],
    )


class _HasTx(Protocol):
    dialect: str
    engine: Engine

    def _tx(self, *, readonly: bool = False) -> AbstractContextManager[Connection]: ...


def _after(dialect: str, cursor: Cursor) -> Any:
    """Entries past `cursor`, as the order index (PostgreSQL) or the primary key (SQLite,
    where txid is always 0) finds them."""
    if dialect == "postgresql":
        return tuple_(OUTBOX.c.txid, OUTBOX.c.seq) > tuple_(cursor.txid, cursor.seq)
    return OUTBOX.c.seq > cursor.seq


def _up_to(dialect: str, cursor: Cursor) -> Any:
    if dialect == "postgresql":
        return tuple_(OUTBOX.c.txid, OUTBOX.c.seq) <= tuple_(cursor.txid, cursor.seq)
    return OUTBOX.c.seq <= cursor.seq


def _order(dialect: str) -> tuple[Any, ...]:
    return (OUTBOX.c.txid, OUTBOX.c.seq) if dialect == "postgresql" else (OUTBOX.c.seq,)


class OutboxMixin:
    # -- reading -------------------------------------------------------------------------------

    def entries_for_job(self: _HasTx, job_id: str) -> list[OutboxEntry]:
        with self._tx(readonly=True) as conn:
            rows = conn.execute(
                select(OUTBOX).where(OUTBOX.c.job_id == job_id).order_by(OUTBOX.c.seq)
            ).all()
        return [entry_from_row(r) for r in rows]

    def recent_entries(self: _HasTx, *, limit: int) -> list[OutboxEntry]:
        """The newest entries, newest first."""
        with self._tx(readonly=True) as conn:
            rows = conn.execute(select(OUTBOX).order_by(OUTBOX.c.seq.desc()).limit(limit)).all()
        return [entry_from_row(r) for r in rows]

    def entries_after(
        self: _HasTx, cursor: Cursor, limit: int, *, settled: bool = True
    ) -> list[OutboxEntry]:
        """Entries after `cursor` in delivery order. `settled` (for delivery): on PostgreSQL,
        only those no transaction still in flight could precede; without it, every committed
        entry (for looking)."""
        query = select(OUTBOX).where(_after(self.dialect, cursor))
        if settled and self.dialect == "postgresql":
            # Only entries of transactions that are over: none still in flight can precede them.
            query = query.where(OUTBOX.c.txid < literal_column(_PG_HORIZON))
        with self._tx(readonly=True) as conn:
            rows = conn.execute(query.order_by(*_order(self.dialect)).limit(limit)).all()
        return [entry_from_row(r) for r in rows]

    def count_after(self: _HasTx, cursor: Cursor) -> int:
        with self._tx(readonly=True) as conn:
            query = select(func.count()).where(_after(self.dialect, cursor))
            if cursor == Cursor():  # every entry is after the start: a count of the whole table
                # (SQLite counts the smallest index's entries, ix_retry_outbox_count's)
                query = select(func.count()).select_from(OUTBOX)
            return int(conn.execute(query).scalar_one())

    # -- sinks ---------------------------------------------------------------------------------

    def sink_states(self: _HasTx) -> dict[str, SinkState]:
        with self._tx(readonly=True) as conn:
            rows = conn.execute(select(OUTBOX_SINKS).order_by(OUTBOX_SINKS.c.name)).all()
        return {r.name: _sink_from_row(r) for r in rows}

    def lease_sink(
        self: _HasTx, name: str, now: datetime, lease_for: timedelta
    ) -> SinkState | None:
        insert = dialect_insert(self.dialect)
        token = uuid.uuid4().hex
        with self._tx() as conn:
            conn.execute(
                insert(OUTBOX_SINKS)
                .values(
                    name=name,
                    cursor_txid=0,
                    cursor_seq=0,
                    delivered=0,
                    failures=0,
                    updated_at=now,
                )
                .on_conflict_do_nothing(index_elements=["name"])
            )
            row = conn.execute(
                update(OUTBOX_SINKS)
                .where(
                    OUTBOX_SINKS.c.name == name,
                    or_(
                        OUTBOX_SINKS.c.lease_expires_at.is_(None),
                        OUTBOX_SINKS.c.lease_expires_at <= now,
                    ),
                    or_(OUTBOX_SINKS.c.retry_at.is_(None), OUTBOX_SINKS.c.retry_at <= now),
                )
                .values(lease_token=token, lease_expires_at=now + lease_for)
                .returning(*OUTBOX_SINKS.c)
            ).first()
        return _sink_from_row(row) if row is not None else None

    def advance_sink(
        self: _HasTx,
        state: SinkState,
        cursor: Cursor,
        count: int,
        now: datetime,
        lease_until: datetime,
    ) -> bool:
        with self._tx() as conn:
            done = conn.execute(
                update(OUTBOX_SINKS)
                .where(
                    OUTBOX_SINKS.c.name == state.name,
                    OUTBOX_SINKS.c.lease_token == state.lease_token,
                )
                .values(
                    cursor_txid=cursor.txid,
                    cursor_seq=cursor.seq,
                    delivered=OUTBOX_SINKS.c.delivered + count,
                    failures=0,
                    last_error=None,
                    retry_at=None,
                    lease_expires_at=lease_until,
                    updated_at=now,
                )
            ).rowcount
        return bool(done)

    def sink_failed(
        self: _HasTx, state: SinkState, error: str, retry_at: datetime, now: datetime
    ) -> None:
        with self._tx() as conn:
            conn.execute(
                update(OUTBOX_SINKS)
                .where(
                    OUTBOX_SINKS.c.name == state.name,
                    OUTBOX_SINKS.c.lease_token == state.lease_token,
                )
                .values(
                    failures=OUTBOX_SINKS.c.failures + 1,
                    last_error=error[:500],
                    retry_at=retry_at,
                    lease_token=None,
                    lease_expires_at=None,
                    updated_at=now,
                )
            )

    def release_sink(self: _HasTx, state: SinkState, now: datetime) -> None:
        with self._tx() as conn:
            conn.execute(
                update(OUTBOX_SINKS)
                .where(
                    OUTBOX_SINKS.c.name == state.name,
                    OUTBOX_SINKS.c.lease_token == state.lease_token,
                )
                .values(lease_token=None, lease_expires_at=None, updated_at=now)
            )

    # -- housekeeping --------------------------------------------------------------------------

    def purge_events(self: _HasTx, before: datetime, sinks: Sequence[str]) -> int:
        """Entries older than `before` that every sink named has taken (all old ones when no
        sink is configured), in short transactions."""
        with self._tx(readonly=True) as conn:
            rows = conn.execute(
                select(OUTBOX_SINKS.c.cursor_txid, OUTBOX_SINKS.c.cursor_seq).where(
                    OUTBOX_SINKS.c.name.in_(list(sinks))
                )
            ).all()
        cursors = [Cursor(r.cursor_txid, r.cursor_seq) for r in rows]
        if len(cursors) < len(set(sinks)):
            cursors.append(Cursor())  # a configured sink that has taken nothing yet
        query = select(OUTBOX.c.seq).where(OUTBOX.c.occurred_at < before)
        if cursors:
            query = query.where(_up_to(self.dialect, min(cursors)))

        batches = purge_batches(self.engine)

        def step(size: int) -> int:
            with batches.transaction(self._tx, size) as conn:
                doomed = query.order_by(OUTBOX.c.seq).limit(size).scalar_subquery()
                return int(conn.execute(OUTBOX.delete().where(OUTBOX.c.seq.in_(doomed))).rowcount)

        return batches.run(step)


def pending_counts(conn: Connection, dialect: str, sinks: Sequence[str]) -> dict[str, int]:
    """How many changes each named sink has yet to take (a sink never run: all of them)."""
    if not sinks:
        return {}
    cursors = {
        r.name: Cursor(r.cursor_txid, r.cursor_seq)
        for r in conn.execute(select(OUTBOX_SINKS).where(OUTBOX_SINKS.c.name.in_(list(sinks))))
    }
    return {
        name: int(
            conn.execute(
                select(func.count()).where(_after(dialect, cursors.get(name, Cursor())))
            ).scalar_one()
        )
        for name in sinks
    }
