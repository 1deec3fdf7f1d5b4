"""payretry serve: the daemon. Claims due jobs every interval until SIGTERM or SIGINT."""

from __future__ import annotations

import threading
from typing import Annotated

import typer

from payretry.cli._context import get_context
from payretry.cli._runner import ConcurrencyOption, ProcessorOption, RateOption, pacing_flags
from payretry.cli.api_cmd import HttpAddrOption, HttpPortOption, http_flags
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
    http_port: HttpPortOption = None,
    http_addr: HttpAddrOption = None,
) -> None:
    """Run the retry daemon: every interval, rescue expired leases and attempt what is due;
    deliver the event outbox to the configured sinks."""
    from payretry.daemon import serve_forever

    app = get_context(ctx)
    if interval is not None:
        app.set_flag("runner.processing_interval", interval)
    if metrics_port is not None:
        app.set_flag("metrics.port", metrics_port)
    pacing_flags(app, concurrency, rate)
    http_flags(app, http_port, http_addr)
    settings, wiring = app.settings, app.wiring
    stop = threading.Event()
    daemon = wiring.daemon(processor, stop=stop)
    metrics = None
    port, addr = settings.metrics.port, settings.metrics.addr
    if port:
        from payretry.sinks.prometheus import serve_metrics

        metrics, _ = serve_metrics(wiring.telemetry(), port, addr)
    http = None
    if settings.http.port:
        from payretry.api.server import ApiServer

        http = ApiServer(wiring, settings.http.addr, settings.http.port).start()
        # On SIGTERM the API drains while the ticker finishes its attempts: both within the
        # grace period.
        threading.Thread(target=lambda: (stop.wait(), http.stop()), daemon=True).start()
    rate_limit = settings.runner.rate
    typer.echo(
        f"payretry serve {daemon.name}: every {format_duration(daemon.interval)}, "
        f"concurrency {settings.runner.concurrency}, "
        f"rate {f'{rate_limit:g}/s' if rate_limit else 'unlimited'}; "
        f"events to {', '.join(wiring.sink_names) or 'no sink'}"
        + (f"; metrics on http://{addr}:{port}/metrics" if metrics is not None else "")
        + (f"; HTTP API on {http.url}" if http is not None else "")
        + "; SIGTERM or Ctrl-C stops",
        err=True,
    )
    try:
        code = serve_forever(daemon, settings.runner.grace_period)
    finally:
        if http is not None:
            stop.set()
            http.stop()
        if metrics is not None:
            metrics.shutdown()
    raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
