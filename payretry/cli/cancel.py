"""payretry cancel: stop retrying a transaction."""

from __future__ import annotations

from typing import Annotated

import typer

from payretry.cli._context import get_context
from payretry.cli._output import JsonOption, console, job_dict, print_json
from payretry.cli._runner import ProcessorOption
from payretry.clock import utcnow


def cancel(
    ctx: typer.Context,
    transaction_id: Annotated[str, typer.Argument(help="The transaction id.")],
    processor: ProcessorOption = None,
    json_output: Annotated[bool, JsonOption] = False,
) -> None:
    """Cancel a transaction's retries (exit 3 if final or mid-attempt). A job waiting on the
    customer has its Checkout Session expired first (through --processor): exit 3 if it was
    already paid (the job succeeds instead), exit 1 if the processor cannot be reached."""
    operations = get_context(ctx).wiring.operations(processor=processor)
    job = operations.cancel(transaction_id, utcnow())
    if json_output:
        print_json(job_dict(job))
        return
    console().print(f"Cancelled the retry job for {transaction_id} ({job.money}).")


def register(app: typer.Typer) -> None:
    app.command("cancel")(cancel)
