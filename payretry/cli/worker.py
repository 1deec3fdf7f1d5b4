"""payretry worker: consume the SQS retry queue until SIGTERM or SIGINT."""

from __future__ import annotations

import json
import threading
from typing import Annotated

import typer

from payretry.cli._context import get_context
from payretry.cli._runner import ProcessorOption
from payretry.signals import restore_signals, stop_on_signals


def worker(
    ctx: typer.Context,
    concurrency: Annotated[
        int | None,
        typer.Option("--concurrency", min=1, max=256, help="Messages handled at once (default 1)."),
    ] = None,
    processor: ProcessorOption = None,
) -> None:
    """Long-poll payments-retry-${ENV} and attempt each job its messages name, once."""
    app = get_context(ctx)
    if concurrency is not None:
        app.set_flag("runner.concurrency", concurrency)
    settings, wiring = app.settings, app.wiring
    stop = threading.Event()
    consumer = wiring.worker(processor, stop=stop)
    if not wiring.sqs_mode:
        typer.echo(
            "warning: [dispatch] mode is inline, so run-due and serve send nothing to the queue; "
            "set PAYRETRY_DISPATCH_MODE=sqs for them",
            err=True,
        )
    typer.echo(
        f"payretry worker: polling {consumer.queue.name}, {consumer.concurrency} at once; "
        "SIGTERM or Ctrl-C stops",
        err=True,
    )
    previous = stop_on_signals(stop, settings.runner.grace_period)
    try:
        counts = consumer.run()
    finally:
        restore_signals(previous)
    typer.echo(f"payretry worker stopped: {json.dumps(dict(sorted(counts.items())))}", err=True)


def register(app: typer.Typer) -> None:
    app.command("worker")(worker)
