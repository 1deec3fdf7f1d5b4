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
    metrics_port: Annotated[
        int | None,
        typer.Option(
            "--metrics-port", min=1, max=65535, help="Expose Prometheus /metrics on this port."
        ),
    ] = None,
) -> None:
    """Run the retry daemon: every interval, rescue expired leases and attempt what is due;
    deliver the event outbox to the configured sinks."""
    from payretry.daemon import Daemon, serve_forever
    from payretry.sinks import build_delivery, configured

    app = get_context(ctx)
    if interval is not None:
        app.set_flag("runner.processing_interval", interval)
    if metrics_port is not None:
        app.set_flag("metrics.port", metrics_port)
    stop = threading.Event()
    runner, proc = build_runner(app, processor, concurrency=concurrency, rate=rate, stop=stop)
    settings = app.settings
    daemon = Daemon(
        app.store,
        runner,
        interval=settings["runner.processing_interval"],
        retention=settings["retention.period"],
        clock=utcnow,
        delivery=build_delivery(app.store, settings, utcnow, stop=stop),
        events_interval=settings["events.interval"],
    )
    metrics = None
    if settings["metrics.port"]:
        from payretry.sinks.prometheus import serve_metrics

        store, sinks = app.store, configured(settings)
        metrics, _ = serve_metrics(
            lambda: store.telemetry(utcnow(), sinks),
            settings["metrics.port"],
            settings["metrics.addr"],
        )
    typer.echo(
        f"payretry serve {daemon.name}: every {format_duration(daemon.interval)}, "
        f"concurrency {runner.concurrency}, "
        f"rate {f'{runner.limiter.rate:g}/s' if runner.limiter else 'unlimited'}; "
        f"events to {', '.join(configured(settings)) or 'no sink'}"
        + (
            f"; metrics on http://{settings['metrics.addr']}:{settings['metrics.port']}/metrics"
            if metrics is not None
            else ""
        )
        + "; SIGTERM or Ctrl-C stops",
        err=True,
    )
    try:
        code = serve_forever(daemon, settings["runner.grace_period"])
    finally:
        proc.close()
        if daemon.delivery is not None:
            daemon.delivery.close()
        if metrics is not None:
            metrics.shutdown()
    raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
