"""PostgreSQL: many rows as one statement, each column bound as one array and unnested by the
server (the store's run-due hot path; SQLite keeps store/bulk.py's executemany).

psycopg's executemany sends one execution per row: the server starts an executor, runs the
fenced lookups and writes, and ends it, once per row. At a run-due batch of 200 that per-row
overhead cost more of the server's CPU than the writes themselves. Here a batch is one
execution: `unnest(%(a)b::INTEGER[], %(b)b::VARCHAR(16)[]) AS v(a, b)` yields the rows, and
the statement joins or inserts them as a set. The arrays go in binary (`%(a)b`): psycopg's
text form escapes every element with a regular expression, which cost the client more than
the executemany it replaced. Each value goes through the bind processor Core
would apply for its column, so what is stored is the same (a naive time is still refused).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import Column, Connection, CursorResult


class Arrays:
    """One statement over `v`, the unnested rows; `{rows}` in the SQL stands for the
    `unnest(...) AS v(...)` of the binds, one per (name, column whose type it takes)."""

    _compiled: WeakKeyDictionary[Any, dict[str, Arrays]] = WeakKeyDictionary()

    def __init__(self, sql: str, binds: Sequence[tuple[str, Column[Any]]], dialect: Any) -> None:
        casts = ", ".join(
            f"%({name})b::{column.type.compile(dialect=dialect)}[]" for name, column in binds
        )
        names = ", ".join(name for name, _ in binds)
        self.sql = sql.format(rows=f"unnest({casts}) AS v({names})")
        self.binds = [(name, column.type.bind_processor(dialect)) for name, column in binds]

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

    def run(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> CursorResult[Any]:
        params: dict[str, list[Any]] = {}
        for name, process in self.binds:
            values = [row[name] for row in rows]
            params[name] = values if process is None else [process(v) for v in values]
        return conn.exec_driver_sql(self.sql, params)
