"""The options of the commands that attempt payments (run-due, serve, retry, worker), and the
flags they set before anything is built."""

from __future__ import annotations

from typing import Annotated

import typer

from payretry.cli._context import AppContext

ProcessorOption = Annotated[
    str | None, typer.Option("--processor", help="Processor name (default from config).")
]
ConcurrencyOption = Annotated[
    int | None,
    typer.Option("--concurrency", min=1, max=256, help="Attempts in flight at once (default 1)."),
]
RateOption = Annotated[
    str | None,
    typer.Option("--rate", help="Most attempts started per second, e.g. 25/s (default: no limit)."),
]


def pacing_flags(app: AppContext, concurrency: int | None, rate: str | None) -> None:
    if concurrency is not None:
        app.set_flag("runner.concurrency", concurrency)
    if rate is not None:
        app.set_flag("runner.rate", rate)
