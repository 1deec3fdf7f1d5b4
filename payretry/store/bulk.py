"""Many rows, one statement, straight to the driver (the store's hot paths)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from operator import itemgetter
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import Connection

from payretry.store.tables import UTCDateTime


class Bulk:
    """One statement for many rows, handed straight to the driver.

    Core's executemany builds and processes a parameter dict per row, which costs several
    times what SQLite itself spends on a bulk queue or a run-due batch. A Bulk compiles its
    statement once per dialect and binds every value with the processor Core itself would use,
    so what is stored is the same; each distinct time is bound once per call (a bulk queue
    shares one "now"). Rows are mappings of bind names; names a row lacks take the statement's
    own constants.

    With `arrays` (an INSERT on PostgreSQL), the rows go as one array per column in a single
    `INSERT ... SELECT ... FROM unnest(...)`: one statement and one round trip for the batch,
    where executemany, even pipelined, sends and the server plans each row on its own (what
    pgqueuer does). The values are bound by the same processors, so what is stored is the same.
    """

    # Per dialect instance (so per engine): compiled SQL may depend on the server's version.
    _compiled: WeakKeyDictionary[Any, dict[str, Bulk]] = WeakKeyDictionary()

    def __init__(
        self,
        stmt: Any,
        dialect: Any,
        column_keys: Sequence[str] | None,
        *,
        arrays: bool = False,
    ) -> None:
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
        self.arrays_sql = (
            _unnest_sql(self.sql, self.names)
            if arrays and dialect.name == "postgresql" and not self.positional
            else None
        )

    @classmethod
    def of(
        cls,
        key: str,
        dialect: Any,
        build: Any,
        column_keys: Sequence[str] | None = None,
        *,
        arrays: bool = False,
    ) -> Bulk:
        """The statement `key` names, compiled on first use; `build` makes it. A key stands
        for one fixed statement (and column set): a variant needs a key of its own."""
        known = cls._compiled.setdefault(dialect, {})
        found = known.get(key)
        if found is None:
            found = known[key] = cls(build(), dialect, column_keys, arrays=arrays)
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

    def columns(self, rows: Iterable[Mapping[str, Any]]) -> dict[str, list[Any]]:
        """The rows' values as one list per bind name, each bound as params() binds it."""
        names, constants = self.names, self.constants
        get = itemgetter(*names)
        picked = [
            get(row if constants.keys() <= row.keys() else {**constants, **row}) for row in rows
        ]
        if len(names) == 1:
            columns = [picked]
        else:
            columns = [list(column) for column in zip(*picked, strict=True)] or [[] for _ in names]
        for index, process, is_time in self.processors:
            columns[index] = list(map(_memo(process) if is_time else process, columns[index]))
        return dict(zip(names, columns, strict=True))

    def run(self, conn: Connection, rows: Iterable[Mapping[str, Any]]) -> Any:
        if self.arrays_sql is not None:
            return conn.exec_driver_sql(self.arrays_sql, self.columns(rows))
        return conn.exec_driver_sql(self.sql, self.params(rows))


# A bind as PostgreSQL's compiler writes it with its cast: `%(name)s::TIMESTAMP WITH TIME ZONE`.
_CAST_BIND = re.compile(r"%\((\w+)\)s::([A-Z][A-Z0-9_ ]*[A-Z0-9_])")


def _unnest_sql(sql: str, names: Sequence[str]) -> str:
    """`INSERT INTO t (c, ...) VALUES (exprs) [RETURNING ...]` as `INSERT INTO t (c, ...)
    SELECT exprs FROM unnest(%(c)b::TYPE[], ...) AS r(c, ...)`: every bind becomes an array
    of its type, read back as r's column of that name; the other expressions (constants,
    `pg_current_xact_id()`) stay as they are. Nothing is returned: executemany returned
    nothing either."""
    head, values_keyword, rest = sql.partition(" VALUES (")
    values = rest.partition(") RETURNING ")[0] if " RETURNING " in rest else rest[:-1]
    types = {match[1]: match[2] for match in _CAST_BIND.finditer(values)}
    if not values_keyword or sorted(types) != sorted(names) or values.count("%(") != len(names):
        raise ValueError(f"not a single-row INSERT with a cast on every bind: {sql}")
    selected = _CAST_BIND.sub(lambda match: f'r."{match[1]}"', values)
    # Binary arrays (%(name)b): psycopg's text form escapes every element in Python, at
    # several times the cost.
    arrays = ", ".join(f"%({name})b::{types[name]}[]" for name in names)
    columns = ", ".join(f'"{name}"' for name in names)
    return f"{head} SELECT {selected} FROM unnest({arrays}) AS r({columns})"


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
