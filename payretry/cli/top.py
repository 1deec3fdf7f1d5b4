"""payretry top: the stats, live, refreshing until Ctrl-C."""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer
from rich.console import Group
from rich.table import Table
from rich.text import Text

from payretry.cli._context import get_context
from payretry.cli._output import console
from payretry.clock import utcnow
from payretry.domain.durations import iso, parse_duration
from payretry.errors import InvalidInput


def render(document: dict[str, Any]) -> Group:
    states = Table(title=f"{document['total']} job(s) at {iso(utcnow().replace(microsecond=0))}")
    states.add_column("state")
    states.add_column("jobs", justify="right")
    for state, count in document["by_state"].items():
        states.add_row(state, str(count))
    pending = Table(title="pending")
    pending.add_column("currency")
    pending.add_column("amount", justify="right")
    for cur, amount in document["pending_amount"].items():
        pending.add_row(cur, amount)
    reasons = Table(title="top failure reasons")
    reasons.add_column("error code")
    reasons.add_column("count", justify="right")
    for code, count in list(document["by_error_code"].items())[:8]:
        reasons.add_row(code, str(count))
    rate = document["success_rate"]
    line = Text(
        f"success rate {'-' if rate is None else f'{rate:.1%}'}   due now {document['due_now']}"
        f" (oldest {document['oldest_due_at'] or '-'})   due next hour "
        f"{document['due_next_hour']}"
    )
    return Group(states, pending, reasons, line)


def top(
    ctx: typer.Context,
    interval: Annotated[str, typer.Option("--interval", help="Refresh every (default 2s).")] = "2s",
    iterations: Annotated[
        int | None, typer.Option("--iterations", min=1, help="Stop after N refreshes.")
    ] = None,
) -> None:
    """Watch the queue live: counts by state, pending amounts, failure reasons, what is due."""
    from rich.live import Live

    from payretry.service.views import stats_document

    every = parse_duration(interval, field="--interval").total_seconds()
    if not 0.1 <= every <= 3600:  # 0 would redraw in a busy loop
        raise InvalidInput("expected 100ms to 1h", field="--interval")
    store = get_context(ctx).store
    out = console()
    shown = 0
    try:
        with Live(
            render(stats_document(store.stats(utcnow()))), console=out, auto_refresh=False
        ) as live:
            shown = 1
            while iterations is None or shown < iterations:
                time.sleep(every)
                live.update(render(stats_document(store.stats(utcnow()))), refresh=True)
                shown += 1
    except KeyboardInterrupt:
        pass


def register(app: typer.Typer) -> None:
    app.command("top")(top)
