"""payretry stripe: the Stripe processor's own commands (check)."""

from __future__ import annotations

from typing import Annotated

import typer

from payretry.cli._context import get_context
from payretry.cli._output import JsonOption, print_json

stripe_app = typer.Typer(help="The Stripe processor: `stripe check` tests the key and the link.")


@stripe_app.command("check")
def check(ctx: typer.Context, json_output: Annotated[bool, JsonOption] = False) -> None:
    """Verify the Stripe key and connectivity; print the account and the mode (test or live)."""
    from payretry.processors.stripe_client import check_account
    from payretry.wiring.processors import stripe_settings

    found = check_account(stripe_settings(get_context(ctx).settings))
    if json_output:
        print_json(found.as_dict())
        return
    name = f" ({found.name})" if found.name else ""
    typer.echo(f"Stripe account {found.account}{name}, {found.mode} mode, via {found.api_base}.")
    if found.charges_enabled is False:
        typer.echo("warning: this account cannot take charges yet (charges_enabled is false).")


def register(app: typer.Typer) -> None:
    app.add_typer(stripe_app, name="stripe")
