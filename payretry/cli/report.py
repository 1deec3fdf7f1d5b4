"""payretry report: recovery analytics from the daily rollups (they survive purge)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from payretry.cli._context import get_context
from payretry.cli._output import JsonOption, console, print_json
from payretry.clock import utcnow
from payretry.domain.durations import format_duration, parse_duration
from payretry.errors import InvalidInput, PayretryError

MAX_SINCE = timedelta(days=3660)


def _since(text: str) -> timedelta:
    period = parse_duration(text, field="--since")
    if period < timedelta(days=1) or period > MAX_SINCE:
        raise InvalidInput("must be 1d to 3660d", field="--since")
    return period


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _print(document: dict[str, Any]) -> None:
    out = console()
    out.print(
        f"Recovery {document['since']} to {document['until']} (UTC days): "
        f"{document['recovered']} recovered, {document['lost']} lost, "
        f"rate {_rate(document['recovery_rate'])}"
    )
    amounts = Table(title="recovered amount")
    for name in ("currency", "payments", "amount"):
        amounts.add_column(name, justify="right" if name != "currency" else "left")
    for cur, row in document["recovered_amount"].items():
        amounts.add_row(cur, str(row["count"]), row["amount"])
    out.print(amounts)
    codes = Table(title="recovery rate by code (error code/decline code queued after)")
    for name in ("code", "ended", "recovered", "rate"):
        codes.add_column(name, justify="left" if name == "code" else "right")
    for row in document["by_code"]:
        codes.add_row(row["code"], str(row["ended"]), str(row["recovered"]), _rate(row["rate"]))
    out.print(codes)
    attempts = Table(title="by attempt number")
    for name in ("attempt", "succeeded", "failed", "rate", "share of recoveries"):
        attempts.add_column(name, justify="right")
    for row in document["by_attempt"]:
        attempts.add_row(
            str(row["attempt"]),
            str(row["succeeded"]),
            str(row["failed"]),
            _rate(row["rate"]),
            _rate(row["share_of_recoveries"]),
        )
    out.print(attempts)
    took = document["time_to_recovery"]
    mean = took["mean_seconds"]
    shown = "-" if mean is None else format_duration(timedelta(seconds=round(mean)))
    out.print(f"Time from first failure to recovery: mean {shown} over {took['count']}")
    for bucket in took["buckets"]:
        out.print(f"  {bucket['label']:>16}: {bucket['count']}")
    daily = Table(title="daily")
    for name in ("day", "recovered", "lost", "cancelled", "amount"):
        daily.add_column(name, justify="left" if name == "day" else "right")
    for row in document["daily"]:
        money = ", ".join(f"{v['amount']} {cur}" for cur, v in row["recovered_amount"].items())
        daily.add_row(
            row["day"], str(row["recovered"]), str(row["lost"]), str(row["cancelled"]), money
        )
    out.print(daily)


def _renderer() -> Any:
    from payretry.charts import render

    if not render.available():
        raise PayretryError("charts need the charts extra: pip install 'payretry[charts]'")
    return render


def report(
    ctx: typer.Context,
    since: Annotated[
        str, typer.Option("--since", help="How many days back, today included (1d to 3660d).")
    ] = "30d",
    json_output: Annotated[bool, JsonOption] = False,
    html: Annotated[
        Path | None,
        typer.Option("--html", help="Write the report, charts and numbers, as one HTML file."),
    ] = None,
    png: Annotated[
        Path | None, typer.Option("--png", help="Write each chart as a PNG into this folder.")
    ] = None,
) -> None:
    """Recovery analytics: recovered amount per currency, recovery rate by error and decline
    code and by attempt number, time from first failure to recovery, a daily trend. From the
    daily rollups written as jobs finish, so the figures survive purge."""
    from payretry.service.recovery import recovery_report

    chosen = [
        name for name, on in (("--json", json_output), ("--html", html), ("--png", png)) if on
    ]
    if len(chosen) > 1:
        raise InvalidInput(f"choose one of {', '.join(chosen)}", field=chosen[1])
    period = _since(since)
    if png is not None and png.exists() and not png.is_dir():
        raise InvalidInput(f"{png} exists and is not a folder", field="--png")
    if html is not None and html.is_dir():
        raise InvalidInput(f"{html} is a folder; name a file", field="--html")
    wiring = get_context(ctx).wiring
    today = utcnow().date()
    first = today - timedelta(days=period.days - 1)
    document = recovery_report(wiring.store, first, today)
    if json_output:
        print_json(document)
        return
    if png is not None:
        charts = _renderer().charts(document, "png")
        png.mkdir(parents=True, exist_ok=True)
        for name, data in charts.items():
            (png / f"{name}.png").write_bytes(data)
        typer.echo(
            f"Wrote {len(charts)} chart(s) to {png}: " + ", ".join(f"{n}.png" for n in charts)
        )
        return
    if html is not None:
        charts = _renderer().charts(document, "svg")
        from payretry.charts.html import report_html

        html.write_text(report_html(document, charts), encoding="utf-8")
        typer.echo(f"Wrote the report to {html}")
        return
    _print(document)


def register(app: typer.Typer) -> None:
    app.command("report")(report)
