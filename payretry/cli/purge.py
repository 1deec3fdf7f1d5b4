"""payretry purge: remove finished jobs older than the retention period (for cron users)."""

from __future__ import annotations

from typing import Annotated

import typer

from payretry.cli._context import get_context
from payretry.cli._output import JsonOption, print_json
from payretry.clock import utcnow
from payretry.domain.durations import format_duration


def purge(
    ctx: typer.Context,
    older_than: Annotated[
        str | None,
        typer.Option("--older-than", help="Age of finished jobs to remove (default 30d)."),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Count only; remove nothing.")] = False,
    json_output: Annotated[bool, JsonOption] = False,
) -> None:
    """Remove finished jobs (succeeded, failed, exhausted, abandoned, cancelled) and their
    attempts, last changed longer ago than --older-than, and outbox entries that old which
    every configured sink has taken. Active jobs are never touched."""
    app = get_context(ctx)
    if older_than is not None:
        app.set_flag("retention.period", older_than)
    period = app.settings.retention.period
    wiring = app.wiring
    count = wiring.store.purge(utcnow() - period, dry_run=dry_run)
    changes = 0
    if not dry_run:  # outbox entries that old which every configured sink has taken
        changes = wiring.store.purge_events(utcnow() - period, wiring.sink_names)
    if json_output:
        print_json(
            {
                "dry_run": dry_run,
                "older_than": format_duration(period),
                "jobs": count,
                "outbox_entries": changes,
            }
        )
        return
    verb = "Would remove" if dry_run else "Removed"
    typer.echo(
        f"{verb} {count} finished job(s) older than {format_duration(period)}"
        + (f" and {changes} delivered outbox entries." if changes else ".")
    )


def register(app: typer.Typer) -> None:
    app.command("purge")(purge)
