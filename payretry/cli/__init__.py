"""The payretry command line. This module only wires the commands together."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from payretry import __version__
from payretry.cli import (
    api_cmd,
    cancel,
    config_cmd,
    db,
    events,
    explain,
    health,
    list_cmd,
    policy_cmd,
    purge,
    queue,
    retry,
    run_due,
    serve,
    sqs_cmd,
    stats,
    status,
    stripe_cmd,
    token_cmd,
    top,
    worker,
)
from payretry.cli._context import AppContext
from payretry.cli._output import JSON_MODE, print_json, render_error
from payretry.errors import PayretryError


class PayretryGroup(TyperGroup):
    """Turns payretry's errors into a one-line message and a documented exit code."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except PayretryError as exc:
            render_error(exc)
            ctx.exit(exc.exit_code)
        except (typer.Exit, typer.Abort):
            raise
        except typer.TyperException as exc:
            # A usage error found by the parser (exit 2): with --json, the same error document.
            code = getattr(exc, "exit_code", 1)
            if JSON_MODE.get() and code == 2:
                formatter = getattr(exc, "format_message", None)
                message = str(formatter()) if callable(formatter) else str(exc)
                print_json(
                    {"error": {"kind": "usage", "message": message, "field": None, "exit_code": 2}}
                )
            raise
        except Exception as exc:
            app_ctx = ctx.find_object(AppContext)
            if app_ctx is not None and app_ctx.debug:
                raise
            render_error(
                PayretryError(
                    f"internal error: {type(exc).__name__}: {exc} "
                    "(run with --debug for a traceback)"
                )
            )
            ctx.exit(1)
        finally:
            app_ctx = ctx.find_object(AppContext)
            if app_ctx is not None:
                app_ctx.close()


app = typer.Typer(
    cls=PayretryGroup,
    name="payretry",
    help="Retry failed payments safely: the right schedule per error, biggest amounts first, "
    "never two attempts at once, never past the payment window.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"payretry {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    db: Annotated[
        str | None, typer.Option("--db", help="Database URL (default sqlite:///payretry.db).")
    ] = None,
    config: Annotated[
        str | None, typer.Option("--config", help="Config file (default ./payretry.toml).")
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
    log_format: Annotated[
        str | None, typer.Option("--log-format", help="auto, human or json (on stderr).")
    ] = None,
    log_level: Annotated[
        str | None, typer.Option("--log-level", help="debug, info, warning or error.")
    ] = None,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    ctx.obj = AppContext(
        db=db, config=config, debug=debug, log_format=log_format, log_level=log_level
    )


for module in (
    queue,
    status,
    explain,
    list_cmd,
    cancel,
    retry,
    run_due,
    serve,
    stats,
    top,
    health,
    purge,
    policy_cmd,
    config_cmd,
    db,
    stripe_cmd,
    worker,
    sqs_cmd,
    events,
    api_cmd,
    token_cmd,
):
    module.register(app)


def main(argv: list[str] | None = None) -> None:
    app(args=argv, prog_name="payretry")


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])
