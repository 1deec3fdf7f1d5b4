"""payretry db: schema migrations (upgrade, current)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from payretry.cli._context import get_context
from payretry.cli._output import JsonOption, print_json

if TYPE_CHECKING:
    from sqlalchemy import Engine

db_app = typer.Typer(help="Schema migrations: `db upgrade` creates or migrates the schema.")


@db_app.command("upgrade")
def upgrade(ctx: typer.Context, json_output: Annotated[bool, JsonOption] = False) -> None:
    """Create the schema in a new database, or migrate an older one to this version's head."""
    from payretry.store import migrate

    url = get_context(ctx).settings.database.url
    engine = _engine(ctx)
    try:
        before, after = migrate.upgrade(engine, url)
    finally:
        engine.dispose()
    if json_output:
        print_json({"from": before, "to": after, "head": migrate.HEAD})
    elif before == after:
        typer.echo(f"Schema is at revision {after} (head); nothing to do.")
    else:
        typer.echo(f"Schema migrated from {before or 'empty'} to revision {after}.")


@db_app.command("current")
def current(ctx: typer.Context, json_output: Annotated[bool, JsonOption] = False) -> None:
    """Print the database's schema revision and this payretry's head revision."""
    from payretry.store import migrate

    url = get_context(ctx).settings.database.url
    engine = _engine(ctx)
    try:
        revision = migrate.revision(engine, url)
    finally:
        engine.dispose()
    if json_output:
        print_json(
            {"revision": revision, "head": migrate.HEAD, "at_head": revision == migrate.HEAD}
        )
        return
    state = "head" if revision == migrate.HEAD else f"head is {migrate.HEAD}"
    typer.echo(f"{revision or 'none (empty database)'} ({state})")


def _engine(ctx: typer.Context) -> Engine:
    from payretry.store.engine import make_engine

    settings = get_context(ctx).settings
    return make_engine(
        settings.database.url,
        pool_size=settings.database.pool_size,
        statement_timeout=settings.database.statement_timeout,
    )


def register(app: typer.Typer) -> None:
    app.add_typer(db_app, name="db")
