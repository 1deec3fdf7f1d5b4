"""payretry update: new card data for a transaction's job (a revival by hand)."""

from __future__ import annotations

from typing import Annotated

import typer

from payretry.cli._context import get_context
from payretry.cli._output import JsonOption, console, job_dict, print_json
from payretry.clock import utcnow


def update(
    ctx: typer.Context,
    transaction_id: Annotated[str, typer.Argument(help="The transaction id.")],
    payment_method: Annotated[
        str, typer.Option("--payment-method", help="The new payment method (pm_...).")
    ],
    customer: Annotated[
        str | None, typer.Option("--customer", help="Its customer (cus_...); else the job's.")
    ] = None,
    json_output: Annotated[bool, JsonOption] = False,
) -> None:
    """Revive a job that stopped or waits because its card needed new data (expired_card,
    confirm_card_data, new_account_information_available, MAC 01): a new attempt now with the
    new payment method, under the same caps and window (exit 4 no job, 3 not revivable)."""
    wiring = get_context(ctx).wiring
    job = wiring.revivals().update(transaction_id, payment_method, customer, utcnow())
    wiring.dispatch_new([job.id])
    if json_output:
        print_json(job_dict(job))
        return
    console().print(
        f"Revived the retry job for {transaction_id}: attempt {job.attempt_count + 1} with "
        f"{payment_method} now.",
        markup=False,
    )


def register(app: typer.Typer) -> None:
    app.command("update")(update)
