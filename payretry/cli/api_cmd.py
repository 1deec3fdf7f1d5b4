"""payretry api: the HTTP API alone (several replicas on one PostgreSQL database behind a load
balancer); `payretry serve --http-port` serves it beside the ticker instead."""

from __future__ import annotations

import threading
from typing import Annotated

import typer

from payretry.cli._context import AppContext, get_context

DEFAULT_PORT = 8080

HttpPortOption = Annotated[
    int | None,
    typer.Option("--http-port", min=0, max=65535, help="Serve the HTTP API on this port."),
]
HttpAddrOption = Annotated[
    str | None, typer.Option("--http-addr", help="Address to listen on (default 127.0.0.1).")
]


def http_flags(app: AppContext, port: int | None, addr: str | None) -> None:
    if port is not None:
        app.set_flag("http.port", port or None)
    if addr is not None:
        app.set_flag("http.addr", addr)


def api(
    ctx: typer.Context,
    http_port: HttpPortOption = None,
    http_addr: HttpAddrOption = None,
) -> None:
    """Serve the HTTP API (no ticker) until SIGTERM or Ctrl-C; requests in flight finish within
    the grace period."""
    from payretry.api.server import ApiServer
    from payretry.signals import restore_signals, stop_on_signals

    app = get_context(ctx)
    http_flags(app, http_port, http_addr)
    settings = app.settings
    port = http_port if http_port is not None else (settings.http.port or DEFAULT_PORT)
    grace = settings.runner.grace_period
    server = ApiServer(app.wiring, settings.http.addr, port, grace=grace)
    stop = threading.Event()
    previous = stop_on_signals(stop, grace)
    try:
        server.start()
        typer.echo(f"payretry api on {server.url}; SIGTERM or Ctrl-C stops", err=True)
        while not stop.wait(1.0) and server.thread.is_alive():
            pass
    finally:
        stopped = server.stop()
        restore_signals(previous)
    raise typer.Exit(0 if stopped else 1)


def register(app: typer.Typer) -> None:
    app.command("api")(api)
