"""payretry token: bearer tokens of the HTTP API (create, customer, list, revoke)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from payretry.cli._context import AppContext, get_context
from payretry.cli._output import JsonOption, console, print_json
from payretry.domain.access import ApiToken, Role
from payretry.domain.durations import parse_duration

group = typer.Typer(help="Bearer tokens of the HTTP API.", no_args_is_help=True)

TtlOption = Annotated[
    str | None, typer.Option("--ttl", help="Lifetime: 24h, 30d (default: never expires).")
]


def _warn_unkeyed(app: AppContext) -> None:
    if not app.settings.http.token_secret:
        typer.echo(
            "warning: [http] token_secret is not set (PAYRETRY_HTTP_TOKEN_SECRET): the token is "
            "stored as a plain SHA-256; set a secret on every API replica",
            err=True,
        )


def _show_new(text: str, token: ApiToken, json_output: bool) -> None:
    from payretry.service.tokens import token_dict

    if json_output:
        print_json({**token_dict(token), "token": text})
        return
    typer.echo(text)
    scope = f" for transaction {token.transaction_id}" if token.transaction_id else ""
    until = f", expires {token.expires_at.isoformat()}" if token.expires_at else ""
    typer.echo(
        f"token {token.id} ({token.role.value}{scope}{until}): shown once; only its hash is kept",
        err=True,
    )


@group.command("create")
def create(
    ctx: typer.Context,
    role: Annotated[str, typer.Option("--role", help="viewer, operator or admin.")],
    name: Annotated[str, typer.Option("--name", help="Who uses it: checkout-svc.")],
    ttl: TtlOption = None,
    json_output: Annotated[bool, JsonOption] = False,
) -> None:
    """Mint a token and print it once (only its keyed hash is stored)."""
    from payretry.errors import InvalidInput
    from payretry.service.tokens import parse_role

    app = get_context(ctx)
    chosen = parse_role(role)
    if chosen is Role.CUSTOMER:
        raise InvalidInput("use `payretry token customer TRANSACTION_ID`", field="--role")
    lifetime = parse_duration(ttl, field="--ttl") if ttl else None
    _warn_unkeyed(app)
    text, token = app.wiring.tokens().create(chosen, name, ttl=lifetime)
    _show_new(text, token, json_output)


@group.command("customer")
def customer(
    ctx: typer.Context,
    transaction_id: Annotated[str, typer.Argument(help="The one transaction it may act on.")],
    ttl: TtlOption = None,
    name: Annotated[str | None, typer.Option("--name", help="Default: customer:<id>.")] = None,
    json_output: Annotated[bool, JsonOption] = False,
) -> None:
    """Mint a customer token: status and retry of one transaction, until it expires
    (default [http] customer_token_ttl, 24h)."""
    app = get_context(ctx)
    lifetime = parse_duration(ttl, field="--ttl") if ttl else app.settings.http.customer_token_ttl
    _warn_unkeyed(app)
    text, token = app.wiring.tokens().create(
        Role.CUSTOMER,
        name or f"customer:{transaction_id}"[:100],
        transaction_id=transaction_id,
        ttl=lifetime,
    )
    _show_new(text, token, json_output)


@group.command("list")
def list_tokens(ctx: typer.Context, json_output: Annotated[bool, JsonOption] = False) -> None:
    """Every token: id, name, role, scope, when it was made, expires, was revoked."""
    from payretry.cli._output import when
    from payretry.service.tokens import token_dict

    tokens = get_context(ctx).wiring.tokens().list()
    if json_output:
        print_json({"tokens": [token_dict(t) for t in tokens]})
        return
    table = Table(title=f"{len(tokens)} token(s)")
    for column in ("id", "name", "role", "transaction", "created", "expires", "revoked"):
        table.add_column(column, overflow="fold")
    for t in tokens:
        table.add_row(
            t.id,
            t.name,
            t.role.value,
            t.transaction_id or "-",
            when(t.created_at),
            when(t.expires_at),
            when(t.revoked_at),
        )
    console().print(table)


@group.command("revoke")
def revoke(
    ctx: typer.Context,
    token_id: Annotated[str, typer.Argument(help="The token's id (see `token list`).")],
    json_output: Annotated[bool, JsonOption] = False,
) -> None:
    """Revoke a token: every request with it is refused (401) from now on."""
    from payretry.service.tokens import token_dict

    token = get_context(ctx).wiring.tokens().revoke(token_id)
    if json_output:
        print_json(token_dict(token))
        return
    console().print(f"Revoked token {token.id} ({token.name}, {token.role.value}).")


def register(app: typer.Typer) -> None:
    app.add_typer(group, name="token")
