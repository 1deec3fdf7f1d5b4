"""payretry config: the effective settings, where each came from, secrets masked."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from payretry.cli._context import get_context
from payretry.cli._output import JsonOption, console, print_json


def config(ctx: typer.Context, json_output: Annotated[bool, JsonOption] = False) -> None:
    """Show every setting's effective value and its source (default, config, env or flag)."""
    settings = get_context(ctx).settings
    rows = settings.describe()
    if json_output:
        print_json(
            {
                "config_file": str(settings.config_file) if settings.config_file else None,
                "settings": rows,
                "policy_overrides": [row.code for row in settings.policy_rows],
            }
        )
        return
    file = settings.config_file or "none (./payretry.toml not found)"
    table = Table(title=f"settings (config file: {file})")
    for column in ("key", "value", "source", "variable"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(
            row["key"],
            "-" if row["value"] is None else str(row["value"]),
            row["source"],
            row["env"],
        )
    console().print(table)


def register(app: typer.Typer) -> None:
    app.command("config")(config)
