"""Many rows, one statement, straight to the driver (the store's hot paths): Bulk for any
database, Arrays for PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from operator import itemgetter
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import Column, Connection, CursorResult, Table

from payretry.store.tables import UTCDateTime


class Bulk:
    """One statement for many rows, handed straight to the driver.

    Core's executemany builds and processes a parameter dict per row, which costs several
    times what SQLite itself spends on a bulk queue or a run-due batch. A Bulk compiles its
    statement once per dialect and binds every value with the processor Core itself would use,
    so what is stored is the same; each distinct time is bound once per call (a bulk queue
    shares one "now"). Rows are mappings of bind names; names a row lacks take the statement's
    own constants.
    """

    # Per dialect instance (so per engine): compiled SQL may depend on the server's version.
    _compiled: WeakKeyDictionary[Any, dict[str, Bulk]] = WeakKeyDictionary()

    def __init__(self, stmt: Any, dialect: Any, column_keys: Sequence[str] | None) -> None:
        compiled: Any = stmt.compile(dialect=dialect, column_keys=column_keys)
        self.sql: str = compiled.string
        self.positional = bool(compiled.positional)
        values: dict[str, Any] = compiled.params
        self.names = list(compiled.positiontup) if self.positional else list(values)
        # Binds with a value of their own (`state = 'running'`, `lease_token = NULL`); the
        # rest come from the rows.
        self.constants = {
            name: values.get(name) for name in self.names if not compiled.binds[name].required
        }
        processors: dict[str, Any] = compiled._bind_processors  # what Core applies per row
        self.processors = [
            (index, processors[name], isinstance(compiled.binds[name].type, UTCDateTime))
            for index, name in enumerate(self.names)
            if processors.get(name) is not None
        ]

    @classmethod
    def of(
        cls, key: str, dialect: Any, build: Any, column_keys: Sequence[str] | None = None
    ) -> Bulk:
        """The statement `key` names, compiled on first use; `build` makes it. A key stands
        for one fixed statement (and column set): a variant needs a key of its own."""
        known = cls._compiled.setdefault(dialect, {})
        found = known.get(key)
        if found is None:
            found = known[key] = cls(build(), dialect, column_keys)
        return found

    def params(self, rows: Iterable[Mapping[str, Any]]) -> list[Any]:
        names, constants = self.names, self.constants
        get = itemgetter(*names)
        processors = [
            (index, _memo(process) if is_time else process)
            for index, process, is_time in self.processors
        ]
        bound: list[Any] = []
        for row in rows:
            picked = get(row if constants.keys() <= row.keys() else {**constants, **row})
            values = list(picked) if len(names) > 1 else [picked]
            for index, process in processors:
                values[index] = process(values[index])
            if self.positional:
                bound.append(tuple(values))
            else:
                bound.append(dict(zip(names, values, strict=True)))
        return bound

    def run(self, conn: Connection, rows: Iterable[Mapping[str, Any]]) -> Any:
        return conn.exec_driver_sql(self.sql, self.params(rows))


_MISSING = object()


def _memo(process: Any) -> Any:
    bound: dict[Any, Any] = {}

    def once(value: Any) -> Any:
        # A lookup, not try/except: a run-due batch binds mostly distinct times, and a raised
        # KeyError per miss cost more than the conversion it saves.
        found = bound.get(value, _MISSING)
        if found is _MISSING:
            found = bound[value] = process(value)
        return found

    return once


class Arrays:
    """PostgreSQL: many rows as one statement, each column bound as one array and unnested by
    the server (the run-due hot path; SQLite keeps Bulk's executemany, cheap in-process).

    psycopg's executemany sends one execution per row: the server starts an executor, runs
    the fenced lookups and writes, and ends it, once per row; at a run-due batch of 200 that
    per-row overhead cost more server CPU than the writes. Here a batch is one execution:
    `{rows}` in the SQL stands for `unnest(%(a)b::INTEGER[], %(b)b::VARCHAR(16)[]) AS v(a, b)`,
    one array per (bind name, column whose type it takes), and the statement joins or inserts
    `v` as a set. The arrays go in binary (`%(a)b`): psycopg's text form escapes every element
    with a regular expression, which cost the client more than the executemany it replaced.
    Each value goes through the bind processor Core would apply for its column, so what is
    stored is the same (a naive time is still refused).
    """

    _compiled: WeakKeyDictionary[Any, dict[str, Arrays]] = WeakKeyDictionary()

    def __init__(self, sql: str, binds: Sequence[tuple[str, Column[Any]]], dialect: Any) -> None:
        casts = ", ".join(
            f"%({name})b::{column.type.compile(dialect=dialect)}[]" for name, column in binds
        )
        names = ", ".join(name for name, _ in binds)
        self.sql = sql.format(rows=f"unnest({casts}) AS v({names})")
        # The dialect's own processor, as Core applies it (psycopg's JSON wraps in its Json).
        self.binds = [
            (name, column.type.dialect_impl(dialect).bind_processor(dialect))
            for name, column in binds
        ]

    @classmethod
    def of(
        cls, key: str, dialect: Any, sql: str, binds: Sequence[tuple[str, Column[Any]]]
    ) -> Arrays:
        """The statement `key` names, built on first use for this dialect (engine)."""
        known = cls._compiled.setdefault(dialect, {})
        found = known.get(key)
        if found is None:
            found = known[key] = cls(sql, binds, dialect)
        return found

    @classmethod
    def insert(
        cls, key: str, dialect: Any, table: Table, names: Sequence[str], *, suffix: str = ""
    ) -> Arrays:
        """`INSERT INTO table (columns) SELECT ... FROM {rows} [suffix]`: the rows of `names`
        (column keys, every row has each) as one statement, in the arrays' order; `suffix`
        such as an ON CONFLICT clause."""
        quote = dialect.identifier_preparer.quote
        columns = ", ".join(quote(table.c[name].name) for name in names)
        values = ", ".join(f"v.{name}" for name in names)
        sql = f"INSERT INTO {quote(table.name)} ({columns}) SELECT {values} FROM {{rows}}"
        sql = f"{sql} {suffix}" if suffix else sql
        return cls.of(key, dialect, sql, [(name, table.c[name]) for name in names])

    def run(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> CursorResult[Any]:
        params: dict[str, list[Any]] = {}
        for name, process in self.binds:
            values = [row[name] for row in rows]
            params[name] = values if process is None else [process(v) for v in values]
        return conn.exec_driver_sql(self.sql, params)
