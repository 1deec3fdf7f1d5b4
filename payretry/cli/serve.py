"""payretry serve: the daemon. Claims due jobs every interval until SIGTERM or SIGINT."""

from __future__ import annotations

import threading
from typing import Annotated

import typer

from payretry.cli._context import get_context
from payretry.cli._runner import ConcurrencyOption, ProcessorOption, RateOption, build_runner
from payretry.clock import utcnow
from payretry.domain.durations import format_duration


def serve(
    ctx: typer.Context,
    interval: Annotated[
        str | None,
        typer.Option("--interval", help="How often to look for due jobs (default 30s)."),
    ] = None,
    concurrency: ConcurrencyOption = None,
    rate: RateOption = None,
    processor: ProcessorOption = None,
) -> None:
    """Run the retry daemon: every interval, rescue expired leases and attempt what is due."""
    from payretry.daemon import Daemon, serve_forever

    app = get_context(ctx)
    if interval is not None:
        app.set_flag("runner.processing_interval", interval)
    stop = threading.Event()
    runner, proc = build_runner(app, processor, concurrency=concurrency, rate=rate, stop=stop)
    settings = app.settings
    daemon = Daemon(
        app.store,
        runner,
        interval=settings["runner.processing_interval"],
        retention=settings["retention.period"],
        clock=utcnow,
    )
    typer.echo(
        f"payretry serve {daemon.name}: every {format_duration(daemon.interval)}, "
        f"concurrency {runner.concurrency}, "
        f"rate {f'{runner.limiter.rate:g}/s' if runner.limiter else 'unlimited'}; "
        "SIGTERM or Ctrl-C stops",
        err=True,
    )
    try:
        code = serve_forever(daemon, settings["runner.grace_period"])
    finally:
        proc.close()
    raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
