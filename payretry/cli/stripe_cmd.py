"""payretry stripe: the Stripe processor's own commands (check)."""

from __future__ import annotations

from typing import Annotated

import typer

from payretry.cli._context import get_context
from payretry.cli._output import JsonOption, print_json

stripe_app = typer.Typer(
    help="The Stripe processor: `stripe check` tests the key and the link; `stripe webhooks` "
    "lists the events to subscribe to."
)


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


@stripe_app.command("webhooks")
def webhooks(ctx: typer.Context, json_output: Annotated[bool, JsonOption] = False) -> None:
    """Print the webhook events to subscribe to in the Stripe Dashboard, what each does, and
    the URL path payretry serves them on (`payretry api` / `serve --http-port`)."""
    from payretry.domain.webhooks import SUBSCRIBED, WEBHOOK_PATH

    app = get_context(ctx)
    stripe = app.settings.stripe
    # Checked as the server checks it (a wrong kind of secret, an open file: exit 2 naming it).
    configured = app.wiring.webhook_secret() is not None
    if json_output:
        print_json(
            {
                "path": WEBHOOK_PATH,
                "events": [{"type": name, "effect": effect} for name, effect in SUBSCRIBED],
                "secret_configured": configured,
                "auto_queue": stripe.auto_queue,
            }
        )
        return
    typer.echo(f"Endpoint URL: https://<your payretry API host>{WEBHOOK_PATH}")
    typer.echo("Events to subscribe to:")
    width = max(len(name) for name, _ in SUBSCRIBED)
    for name, effect in SUBSCRIBED:
        typer.echo(f"  {name:<{width}}  {effect}")
    if not configured:
        typer.echo(
            "The signing secret is not set: put the endpoint's whsec_... in "
            "PAYRETRY_STRIPE_WEBHOOK_SECRET or [stripe] webhook_secret_file."
        )


def register(app: typer.Typer) -> None:
    app.add_typer(stripe_app, name="stripe")
