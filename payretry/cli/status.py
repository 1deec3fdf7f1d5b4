"""payretry status: one job, with its attempts."""

from __future__ import annotations

from typing import Annotated

import typer

from payretry.cli._context import get_context
from payretry.cli._output import (
    JsonOption,
    attempts_table,
    console,
    job_dict,
    job_panel,
    print_json,
)
from payretry.cli._text import TextCommand
from payretry.service.lookup import job_status


def status(
    ctx: typer.Context,
    transaction_id: Annotated[str, typer.Argument(help="The transaction id.")],
    json_output: Annotated[bool, JsonOption] = False,
) -> None:
    """Show a transaction's retry job (the active one, else the latest) and its attempts."""
    job = job_status(get_context(ctx).wiring.job_reader(), transaction_id)
    if json_output:
        print_json(job_dict(job))
        return
    out = console()
    out.print(job_panel(job))
    if job.attempts:
        out.print(attempts_table(job))


def register(app: typer.Typer) -> None:
    app.command("status", cls=TextCommand)(status)
