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
    """Remove finished jobs (succeeded, failed, exhausted, abandoned, cancelled, blocked) and
    their attempts, last changed longer ago than --older-than, and outbox entries that old
    which every configured sink has taken. Active jobs are never touched. The card ledger
    keeps its own retention ([retention] card_ledger, at least 31 days), whatever
    --older-than says. Says how long the jobs' batches held the database's write lock at
    most: what a `run-due` or `queue` beside it waited for."""
    from payretry.store.purge import Holds

    app = get_context(ctx)
    if older_than is not None:
        app.set_flag("retention.period", older_than)
    period = app.settings.retention.period
    wiring = app.wiring
    now = utcnow()
    holds = Holds()
    count = wiring.store.purge(now - period, dry_run=dry_run, holds=holds)
    ledger = app.settings.ledger_retention()
    entries = wiring.store.purge_card_ledger(now - ledger, dry_run=dry_run)
    changes = 0
    if not dry_run:  # outbox entries that old which every configured sink has taken
        changes = wiring.store.purge_events(now - period, wiring.sink_names)
    if json_output:
        print_json(
            {
                "dry_run": dry_run,
                "older_than": format_duration(period),
                "jobs": count,
                "outbox_entries": changes,
                "card_ledger_entries": entries,
                "card_ledger_older_than": format_duration(ledger),
                "transactions": holds.transactions,
                "longest_hold_ms": round(holds.longest * 1e3, 1),
                "longest_wait_ms": round(holds.longest_wait * 1e3, 1),
            }
        )
        return
    verb = "Would remove" if dry_run else "Removed"
    typer.echo(
        f"{verb} {count} finished job(s) older than {format_duration(period)}"
        + (f" and {changes} delivered outbox entries" if changes else "")
        + (
            f"; {entries} card-ledger entries older than {format_duration(ledger)}"
            if entries
            else ""
        )
        + "."
        + (
            f" Longest write-lock hold {holds.longest * 1e3:,.0f} ms"
            f" ({holds.transactions} transaction(s))."
            if holds.transactions
            else ""
        )
    )


def register(app: typer.Typer) -> None:
    app.command("purge")(purge)
