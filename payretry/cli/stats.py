"""payretry stats: counts by state, pending amounts, failure reasons, success rates, what is due."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from payretry.cli._context import get_context
from payretry.cli._output import JsonOption, console, print_json
from payretry.clock import utcnow
from payretry.service.views import events_document, stats_document


def stats(ctx: typer.Context, json_output: Annotated[bool, JsonOption] = False) -> None:
    """Show counts by state, pending amount per currency, failure reasons and success rates."""
    wiring = get_context(ctx).wiring
    document = stats_document(wiring.store.stats(utcnow()))
    depth = wiring.queue_depth()  # sqs mode only
    if depth is not None:
        document["queue"] = depth
    document["events"] = events_document(wiring.store, wiring.sink_names)
    if json_output:
        print_json(document)
        return
    out = console()
    states = Table(title=f"{document['total']} job(s)")
    states.add_column("state")
    states.add_column("jobs", justify="right")
    for state, count in document["by_state"].items():
        states.add_row(state, str(count))
    out.print(states)
    if document["pending_amount"]:
        pending = Table(title="pending (scheduled or running)")
        pending.add_column("currency")
        pending.add_column("amount", justify="right")
        for cur, amount in document["pending_amount"].items():
            pending.add_row(cur, amount)
        out.print(pending)
    if document["by_error_code"]:
        reasons = Table(title="failure reasons (queued and per failed attempt)")
        reasons.add_column("error code")
        reasons.add_column("count", justify="right")
        for code, count in list(document["by_error_code"].items())[:10]:
            reasons.add_row(code, str(count))
        out.print(reasons)
    rate = document["success_rate"]
    per = ", ".join(
        f"#{n}: {r:.0%}" for n, r in document["success_rate_by_attempt"].items() if r is not None
    )
    out.print(
        f"Success rate: {'-' if rate is None else f'{rate:.1%}'}"
        + (f" (by attempt {per})" if per else "")
    )
    out.print(
        f"Due now: {document['due_now']} (oldest {document['oldest_due_at'] or '-'}); "
        f"due in the next hour: {document['due_next_hour']}"
    )
    if depth is not None:
        out.print(_depth_line(depth))
    out.print(_events_line(document["events"]), markup=False)


def _events_line(events: dict[str, Any]) -> str:
    sinks = "; ".join(
        f"{s['sink']} {s['pending']} change(s) pending"
        + (f" (failing: {s['last_error']}; next try {s['retry_at']})" if s["failures"] else "")
        for s in events["sinks"]
    )
    return f"Events: {events['changes']} change(s) in the outbox; " + (
        sinks or "no sink configured"
    )


def _depth_line(depth: dict[str, Any]) -> str:
    if "error" in depth:
        return f"Queue {depth['queue']}: unavailable ({depth['error']})"
    dead = "-" if depth["dead"] is None else depth["dead"]
    return (
        f"Queue {depth['queue']}: {depth['visible']} visible, {depth['in_flight']} in flight, "
        f"{depth['delayed']} delayed; dead-letter queue: {dead}; "
        f"jobs dispatched {depth['dispatched']} (unconfirmed {depth['unconfirmed']})"
    )


def register(app: typer.Typer) -> None:
    app.command("stats")(stats)
