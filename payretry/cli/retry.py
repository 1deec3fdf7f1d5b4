"""payretry retry: attempt one transaction now (customer- or operator-initiated)."""

from __future__ import annotations

from typing import Annotated

import typer

from payretry.cli._context import get_context
from payretry.cli._output import JsonOption, console, job_dict, print_json, when
from payretry.cli._runner import ProcessorOption
from payretry.clock import utcnow


def retry(
    ctx: typer.Context,
    transaction_id: Annotated[str, typer.Argument(help="The transaction id.")],
    processor: ProcessorOption = None,
    json_output: Annotated[bool, JsonOption] = False,
) -> None:
    """Attempt a scheduled job now, counting one attempt (at most [throttle] per_transaction
    per transaction_window, and per_user per user_window)."""
    app = get_context(ctx)
    requests = app.wiring.retry_requests(processor)  # here, now; throttled like the API's
    result = requests.retry(requests.operations.status(transaction_id), utcnow())
    job = app.store.find(transaction_id)
    if json_output:
        document = {"result": result.as_dict()}
        if job is not None:
            document["job"] = job_dict(job)
        print_json(document)
        return
    error = f" ({result.error_code})" if result.error_code else ""
    follow = f", next retry at {when(result.next_retry_at)}" if result.next_retry_at else ""
    console().print(
        f"Attempt {result.attempt} for {transaction_id}: {result.outcome}{error}; "
        f"job {result.state}{follow}."
    )


def register(app: typer.Typer) -> None:
    app.command("retry")(retry)
