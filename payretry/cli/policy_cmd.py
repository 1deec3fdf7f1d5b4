"""payretry policy: the effective strategy table."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from payretry.cli._context import get_context
from payretry.cli._output import JsonOption, console, print_json
from payretry.domain.durations import format_duration


def policy(ctx: typer.Context, json_output: Annotated[bool, JsonOption] = False) -> None:
    """Show the effective retry policy: one row per code, the default, and the global cap."""
    settings = get_context(ctx).settings
    effective = settings.policy()
    rows: list[dict[str, Any]] = [
        {
            "code": row.code,
            "retry": row.retry and effective.limit(row) > 0,
            "max_attempts": effective.limit(row),
            "delays": [format_duration(d) for d in row.delays],
            "source": row.source,
        }
        for row in effective.table()
    ]
    if json_output:
        print_json({"global_cap": effective.cap, "jitter": effective.jitter, "rows": rows})
        return
    table = Table(title=f"retry policy (global cap {effective.cap}, jitter {effective.jitter})")
    for column in ("code", "retry", "max attempts", "delays", "source"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(
            str(row["code"]),
            "yes" if row["retry"] else "never",
            str(row["max_attempts"]),
            ", ".join(row["delays"]) or "-",
            str(row["source"]),
        )
    console().print(table)
    console().print("Lookup order: decline code, then error code, then default.")


def register(app: typer.Typer) -> None:
    app.command("policy")(policy)
