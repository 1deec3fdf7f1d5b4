"""payretry events: the outbox (list) and its delivery to the configured sinks (deliver)."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer
from rich.table import Table

from payretry.cli._context import get_context
from payretry.cli._output import JsonOption, console, print_json, when
from payretry.errors import PayretryError

events_app = typer.Typer(
    name="events",
    help="The event outbox: list it, deliver it to the configured sinks.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


def describe_event(event: dict[str, Any]) -> str:
    """One line for people: when, what, and where it has gone."""
    what = event["type"]
    if event.get("notification"):
        what += f' {event["notification"]}: "{event.get("message")}"'
    elif event["type"] == "retry_failed":
        code = event.get("decline_code") or event.get("error_code")
        what += f" ({code}; {'will retry' if event.get('will_retry') else 'no retry'})"
    elif event["type"] == "retry_scheduled":
        what += f" for {str(event.get('next_retry_at'))[:19]}Z"
    elif event["type"] == "retry_postponed":
        what += f" to {str(event.get('next_retry_at'))[:19]}Z by {event.get('rule')}"
    elif event["type"] == "retry_blocked":
        what += f" by {event.get('rule')}"
    elif event["type"] == "retry_evicted":
        what += f" for {event.get('evicted_by_transaction')} (a full queue)"
    where = ""
    if event["delivered_to"]:
        where += f"; delivered to {', '.join(event['delivered_to'])}"
    if event["pending_for"]:
        where += f"; pending for {', '.join(event['pending_for'])}"
    return f"{event['occurred_at'][:19]}Z attempt {event['attempt']} {what}{where}"


def list_events(
    ctx: typer.Context,
    pending: Annotated[
        bool, typer.Option("--pending", help="Only events some configured sink has yet to take.")
    ] = False,
    limit: Annotated[
        int, typer.Option("--limit", min=1, max=10**9, help="At most this many changes.")
    ] = 50,
    json_output: Annotated[bool, JsonOption] = False,
) -> None:
    """List the outbox, newest first (oldest first with --pending): each event, its id and the
    sinks that have yet to take it."""
    from payretry.service.views import event_row, sink_row, sink_states

    wiring = get_context(ctx).wiring
    store = wiring.store
    states = sink_states(store, wiring.sink_names)
    sinks = [sink_row(store, state) for state in states]
    if pending:
        low = min((s.cursor for s in states), default=None)
        entries = store.entries_after(low, limit, settled=False) if low is not None else []
        entries = [e for e in entries if any(not s.cursor.passed(e) for s in states)]
    else:
        entries = store.recent_entries(limit=limit)
    events = [event_row(event, states) for entry in entries for event in entry.events()]
    if json_output:
        print_json({"sinks": sinks, "events": events, "count": len(events)})
        return
    out = console()
    if sinks:
        table = Table(title="sinks")
        for column in ("sink", "changes pending", "delivered", "failures", "next try", "error"):
            table.add_column(column, overflow="fold")
        for row in sinks:
            table.add_row(
                row["sink"],
                str(row["pending"]),
                str(row["delivered"]),
                str(row["failures"]),
                row["retry_at"] or "-",
                row["last_error"] or "-",
            )
        out.print(table)
    else:
        out.print(
            "No sink is configured ([events] file, [webhook], [segment], [statsd]).", markup=False
        )
    if not events:
        out.print("No events pending." if pending else "The outbox is empty.")
        return
    table = Table(title=f"{len(events)} event(s)" + (" pending" if pending else ""))
    for column in ("seq", "occurred", "type", "transaction", "attempt", "pending for"):
        table.add_column(column, overflow="fold")
    for event in events:
        kind = event["type"]
        if event.get("notification"):
            kind += f" ({event['notification']})"
        table.add_row(
            str(event["seq"]),
            event["occurred_at"][:19] + "Z",
            kind,
            event["transaction_id"],
            str(event["attempt"]),
            ", ".join(event["pending_for"]) or "-",
        )
    out.print(table)


def deliver(
    ctx: typer.Context,
    sink: Annotated[
        str | None, typer.Option("--sink", help="Only this sink (file, webhook, segment, statsd).")
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option("--limit", min=1, max=10**9, help="At most this many changes per sink."),
    ] = None,
    json_output: Annotated[bool, JsonOption] = False,
) -> None:
    """Deliver pending events to every configured sink once (for cron; `serve` does this
    continuously). Exit 1 when a sink failed: its events stay pending for the next run."""
    app = get_context(ctx)
    results = app.wiring.delivery(only=sink).deliver(limit=limit)
    failed = [r for r in results if r.error]
    # With `[events] file = "-"` the events are this command's stdout: the summary goes aside.
    to_stderr = app.settings.events.file == "-"
    if json_output:
        document = {"sinks": [r.as_dict() for r in results], "failed": len(failed)}
        if to_stderr:
            import json

            sys.stderr.write(json.dumps(document, indent=2) + "\n")
        else:
            print_json(document)
    else:
        out = console(stderr=to_stderr)
        if not results:
            out.print("No sink is configured: nothing to deliver.")
        for r in results:
            if r.skipped:
                again = f" (next try {when(r.retry_at)})" if r.retry_at else ""
                out.print(f"{r.sink}: skipped, {r.skipped}{again}.")
            elif r.error:
                out.print(
                    f"{r.sink}: FAILED after {r.events} event(s): {r.error}; "
                    f"the rest wait (next try {when(r.retry_at)})."
                )
            else:
                out.print(f"{r.sink}: {r.events} event(s) delivered ({r.entries} change(s)).")
    if failed:
        raise PayretryError(
            "delivery failed for " + ", ".join(f"{r.sink} ({r.error})" for r in failed)
        )


def register(app: typer.Typer) -> None:
    events_app.command("list")(list_events)
    events_app.command("deliver")(deliver)
    app.add_typer(events_app, name="events")
