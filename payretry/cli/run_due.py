"""payretry run-due: process due retries in priority order (safe to run from cron, in parallel)."""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import Annotated

import typer

from payretry.cli._context import AppContext, get_context
from payretry.cli._output import JsonOption, console, job_dict, jobs_table, print_json, when
from payretry.cli._runner import ConcurrencyOption, ProcessorOption, RateOption, pacing_flags
from payretry.clock import utcnow
from payretry.signals import restore_signals, stop_on_signals

_SHOWN = 50


def run_due(
    ctx: typer.Context,
    limit: Annotated[
        int | None,
        typer.Option("--limit", help="Attempt at most this many jobs.", min=1, max=10**9),
    ] = None,
    processor: ProcessorOption = None,
    concurrency: ConcurrencyOption = None,
    rate: RateOption = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would be attempted; change nothing.")
    ] = False,
    metrics_textfile: Annotated[
        str | None,
        typer.Option(
            "--metrics-textfile",
            help="After the run, write Prometheus metrics here (textfile collector, .prom).",
        ),
    ] = None,
    json_output: Annotated[bool, JsonOption] = False,
) -> None:
    """Attempt every due job, highest priority first, until none is due or --limit is reached."""
    from payretry.domain.outcomes import JobResult

    app = get_context(ctx)
    if metrics_textfile is not None:
        app.set_flag("metrics.textfile", metrics_textfile)
    pacing_flags(app, concurrency, rate)
    settings = app.settings
    if dry_run:
        jobs = app.store.due_preview(utcnow(), limit or 1000)
        if json_output:
            print_json({"dry_run": True, "would_attempt": [job_dict(j) for j in jobs]})
        elif jobs:
            console().print(jobs_table(jobs, title=f"{len(jobs)} job(s) would be attempted"))
        else:
            console().print("Nothing is due.")
        return
    stop = threading.Event()
    due = app.wiring.due_pass(processor, stop=stop)
    previous = stop_on_signals(stop, settings.runner.grace_period)
    shown: list[JobResult] = []
    first = True

    def stream(result: JobResult) -> None:
        # Results are written as they come, so memory stays flat however long the run.
        nonlocal first
        sys.stdout.write(("  " if first else ",\n  ") + json.dumps(result.as_dict()))
        first = False

    given = 0

    def keep(result: JobResult) -> None:
        nonlocal given
        given += 1
        if len(shown) < _SHOWN:
            shown.append(result)

    progress = None
    err = None if json_output else console(stderr=True)  # --json never loads rich
    if err is not None and err.is_terminal:
        from rich.progress import Progress, SpinnerColumn, TextColumn

        progress = Progress(
            SpinnerColumn(), TextColumn("{task.completed} attempted"), console=err, transient=True
        )
    try:
        if json_output:
            sys.stdout.write('{\n"results": [\n')
            report = due.run_due(limit=limit, on_result=stream)
        elif progress is not None:
            with progress:
                task = progress.add_task("run-due")
                report = due.run_due(
                    limit=limit,
                    on_result=keep,
                    on_batch=lambda n: progress.advance(task, n),
                )
        else:
            report = due.run_due(limit=limit, on_result=keep)
    finally:
        restore_signals(previous)
    if json_output:
        summary = json.dumps(report.as_dict(), indent=2)[1:]
        sys.stdout.write("\n],\n" + summary + "\n")
        write_metrics(app, report.as_dict())
        return
    out = console()
    counts = report.as_dict()
    if shown:
        from rich.table import Table

        table = Table(title="attempts")
        for column in ("transaction", "attempt", "outcome", "error", "state", "next retry"):
            table.add_column(column, overflow="fold")
        for r in shown:
            error = (r.error_code or "-") + (f"/{r.decline_code}" if r.decline_code else "")
            table.add_row(
                r.transaction_id, str(r.attempt), r.outcome, error, r.state, when(r.next_retry_at)
            )
        out.print(table)
        if given > len(shown):
            out.print(f"... and {given - len(shown)} more (use --json for all).")
    summary = ", ".join(f"{n} {k}" for k, n in counts.items() if k != "processed" and n)
    out.print(f"Processed {report.processed} job(s)" + (f": {summary}." if summary else "."))
    write_metrics(app, counts)


def write_metrics(app: AppContext, counts: dict[str, int]) -> None:
    """The Prometheus textfile, when asked for: written to a temporary file and renamed over
    the path. Written after the output, so a failure (exit 1) never cuts the --json short."""
    path = app.settings.metrics.textfile
    if not path:
        return
    from payretry.sinks.prometheus import write_textfile

    try:
        write_textfile(path, app.wiring.telemetry(), time.time(), counts)
    except OSError as exc:
        sys.stderr.write(f"error: cannot write metrics to {path}: {exc.strerror or exc}\n")
        raise typer.Exit(1) from None


def register(app: typer.Typer) -> None:
    app.command("run-due")(run_due)
