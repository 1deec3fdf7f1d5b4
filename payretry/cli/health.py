"""payretry health: exit 0 when retries are being processed, 1 with the reason otherwise."""

from __future__ import annotations

from typing import Annotated

import typer

from payretry.cli._context import get_context
from payretry.cli._output import JsonOption, print_json
from payretry.clock import utcnow


def health(
    ctx: typer.Context,
    max_due_age: Annotated[
        str | None,
        typer.Option("--max-due-age", help="Cron mode: fail when a due job waited longer (15m)."),
    ] = None,
    json_output: Annotated[bool, JsonOption] = False,
) -> None:
    """Check that a daemon beat within 3 intervals, or (cron only) that no due job is stale."""
    from payretry.service.health import check_health

    app = get_context(ctx)
    if max_due_age is not None:
        app.set_flag("health.max_due_age", max_due_age)
    result = check_health(app.store, utcnow(), app.settings.health.max_due_age)
    if json_output:
        print_json(result.as_dict())
    else:
        typer.echo(f"{'ok' if result.ok else 'UNHEALTHY'} ({result.mode}): {result.reason}")
    if not result.ok:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("health")(health)
