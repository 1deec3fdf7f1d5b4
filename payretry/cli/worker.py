"""payretry worker: consume the SQS retry queue until SIGTERM or SIGINT."""

from __future__ import annotations

import json
import threading
from typing import Annotated

import typer

from payretry.cli._context import get_context
from payretry.cli._runner import ProcessorOption, build_runner
from payretry.clock import utcnow
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
    from payretry.cli._sqs import build_dispatcher, open_queue, sqs_mode
    from payretry.service.worker import Worker

    app = get_context(ctx)
    if concurrency is not None:
        app.set_flag("runner.concurrency", concurrency)
    settings = app.settings
    queue = open_queue(app)
    stop = threading.Event()
    runner, proc = build_runner(app, processor, stop=stop, dispatch=False)
    consumer = Worker(
        app.store,
        runner,
        queue,
        build_dispatcher(app, queue),
        clock=utcnow,
        concurrency=settings["runner.concurrency"],
        wait_time=settings["sqs.wait_time"],
        visibility=settings["sqs.visibility_timeout"],
        failure_visibility=settings["sqs.failure_visibility"],
        grace=settings["runner.grace_period"],
        stop=stop,
    )
    if not sqs_mode(app):
        typer.echo(
            "warning: [dispatch] mode is inline, so run-due and serve send nothing to the queue; "
            "set PAYRETRY_DISPATCH_MODE=sqs for them",
            err=True,
        )
    typer.echo(
        f"payretry worker: polling {queue.name}, {consumer.concurrency} at once; "
        "SIGTERM or Ctrl-C stops",
        err=True,
    )
    previous = stop_on_signals(stop, settings["runner.grace_period"])
    try:
        counts = consumer.run()
    finally:
        restore_signals(previous)
        proc.close()
        queue.close()
    typer.echo(f"payretry worker stopped: {json.dumps(dict(sorted(counts.items())))}", err=True)


def register(app: typer.Typer) -> None:
    app.command("worker")(worker)
