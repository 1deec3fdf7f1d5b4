"""Build a Runner from the settings and the command's flags (run-due, serve, retry)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated

import typer

from payretry.cli._context import AppContext
from payretry.clock import utcnow
from payretry.domain.ports import Processor
from payretry.processors.registry import build_processor

if TYPE_CHECKING:
    from payretry.service.runner import Runner

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


def build_runner(
    app: AppContext,
    processor: str | None,
    *,
    concurrency: int | None = None,
    rate: str | None = None,
    stop: threading.Event | None = None,
    dispatch: bool = True,
) -> tuple[Runner, Processor]:
    """`dispatch`: in sqs mode, a runner that sends due jobs to the queue (run-due, serve)."""
    from payretry.service.pacing import RateLimiter
    from payretry.service.runner import Runner

    if concurrency is not None:
        app.set_flag("runner.concurrency", concurrency)
    if rate is not None:
        app.set_flag("runner.rate", rate)
    settings = app.settings
    proc = build_processor(processor or settings["processor.name"], settings)
    per_second = settings["runner.rate"]
    runner_class: Callable[..., Runner] = Runner
    if dispatch and settings["dispatch.mode"] == "sqs":
        from payretry.cli._sqs import dispatch_runner_class

        runner_class = dispatch_runner_class(app)
    runner = runner_class(
        app.store,
        settings.policy(),
        proc,
        clock=utcnow,
        lease_for=settings["database.lock_timeout"],
        batch_size=settings["runner.batch_size"],
        concurrency=settings["runner.concurrency"],
        limiter=RateLimiter(per_second) if per_second else None,
        stop=stop,
        grace=settings["runner.grace_period"],
    )
    return runner, proc
