"""payretry stats: counts by state, pending amounts, failure reasons, success rates, what is due."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from payretry.cli._context import AppContext, get_context
from payretry.cli._output import JsonOption, console, print_json, when
from payretry.clock import utcnow
from payretry.domain.money import Money
from payretry.domain.ports import Stats


def stats_document(stats: Stats) -> dict[str, Any]:
    finished = sum(total for _, total in stats.success_by_attempt.values())
    succeeded = sum(ok for ok, _ in stats.success_by_attempt.values())
    return {
        "total": stats.total,
        "by_state": dict(sorted(stats.by_state.items())),
        "pending_amount_minor": dict(stats.pending_amount_minor),
        "pending_amount": {
            cur: Money(amount, cur).major() for cur, amount in stats.pending_amount_minor.items()
        },
        "by_error_code": dict(stats.by_error_code),
        "attempts": dict(sorted(stats.attempts_by_outcome.items())),
        "success_rate": round(succeeded / finished, 4) if finished else None,
        "success_rate_by_attempt": {
            str(n): round(ok / total, 4) if total else None
            for n, (ok, total) in sorted(stats.success_by_attempt.items())
        },
        "due_now": stats.due_now,
        "due_next_hour": stats.due_next_hour,
        "oldest_due_at": when(stats.oldest_due_at) if stats.oldest_due_at else None,
    }


def stats(ctx: typer.Context, json_output: Annotated[bool, JsonOption] = False) -> None:
    """Show counts by state, pending amount per currency, failure reasons and success rates."""
    app = get_context(ctx)
    document = stats_document(app.store.stats(utcnow()))
    from payretry.cli._sqs import queue_depth

    depth = queue_depth(app)  # sqs mode only
    if depth is not None:
        document["queue"] = depth
    document["events"] = events_document(app)
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


def events_document(app: AppContext) -> dict[str, Any]:
    """The outbox: how many changes it holds, and each configured sink's backlog."""
    from payretry.cli.events import sink_rows
    from payretry.domain.outbox import Cursor

    sinks = sink_rows(app)
    for row in sinks:
        del row["state"]
    return {"changes": app.store.count_after(Cursor()), "sinks": sinks}


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
