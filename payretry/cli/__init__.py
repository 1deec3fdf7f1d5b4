"""The payretry command line. This module only names the commands; each lives in its own module
under payretry/cli, imported only when that command runs (see payretry/cli/_lazy.py), so
`payretry --help` and a cron job's `payretry run-due` start without loading the rest.

A new command is one line in COMMANDS: its name, its module (which has `register(app)`), and
the first sentence of its help, which the root --help lists (a test keeps the two equal). A
new subcommand of a group (`stripe`, `events`, ...) needs no line here: its group's module
registers it.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from payretry import __version__
from payretry.cli._context import AppContext
from payretry.cli._group import PayretryGroup
from payretry.cli._lazy import Lazy

# In the order the root --help lists them: the commands, then the command groups.
COMMANDS = (
    Lazy(
        "queue",
        "queue",
        "Queue a failed payment for retry (idempotent while its job is active).",
    ),
    Lazy(
        "status",
        "status",
        "Show a transaction's retry job (the active one, else the latest) and its attempts.",
    ),
    Lazy(
        "explain",
        "explain",
        "Tell a job's story: what failed, which policy row applied, why the next retry is then,"
        " why it stopped; then its events and where each has been delivered.",
    ),
    Lazy("list", "list_cmd", "List retry jobs, newest first (or in claim order with --due)."),
    Lazy(
        "cancel",
        "cancel",
        "Cancel a transaction's retries (exit 3 if final or mid-attempt).",
    ),
    Lazy(
        "retry",
        "retry",
        "Attempt a scheduled job now, counting one attempt (at most [throttle] per_transaction "
        "per transaction_window, and per_user per user_window).",
    ),
    Lazy(
        "update",
        "update",
        "Revive a job that stopped or waits because its card needed new data (expired_card,"
        " confirm_card_data, new_account_information_available, MAC 01): a new attempt now with"
        " the new payment method, under the same caps and window (exit 4 no job, 3 not"
        " revivable).",
    ),
    Lazy(
        "run-due",
        "run_due",
        "Attempt every due job, highest priority first, until none is due or --limit is reached.",
    ),
    Lazy(
        "serve",
        "serve",
        "Run the retry daemon: every interval, rescue expired leases and attempt what is due; "
        "deliver the event outbox to the configured sinks.",
    ),
    Lazy(
        "stats",
        "stats",
        "Show counts by state, pending amount per currency, failure reasons and success rates.",
    ),
    Lazy(
        "report",
        "report",
        "Recovery analytics: recovered amount per currency, recovery rate by error and decline "
        "code and by attempt number, time from first failure to recovery, a daily trend.",
    ),
    Lazy(
        "top",
        "top",
        "Watch the queue live: counts by state, pending amounts, failure reasons, what is due.",
    ),
    Lazy(
        "health",
        "health",
        "Check that a daemon beat within 3 intervals, or (cron only) that no due job is stale.",
    ),
    Lazy(
        "purge",
        "purge",
        "Remove finished jobs (succeeded, failed, exhausted, abandoned, cancelled, blocked) and"
        " their attempts, last changed longer ago than --older-than, and outbox entries that "
        "old which every configured sink has taken.",
    ),
    Lazy(
        "card",
        "card_cmd",
        "Show a card's recent attempts and declines (from every job), the network limits left "
        "and the waits or blocks in force, as the card-network rules count them.",
    ),
    Lazy(
        "config",
        "config_cmd",
        "Show every setting's effective value and its source (default, config, env or flag).",
    ),
    Lazy(
        "worker",
        "worker",
        "Long-poll payments-retry-${ENV} and attempt each job its messages name, once.",
    ),
    Lazy(
        "api",
        "api_cmd",
        "Serve the HTTP API (no ticker) until SIGTERM or Ctrl-C; requests in flight finish "
        "within the grace period.",
    ),
    Lazy(
        "policy",
        "policy_cmd",
        "The retry policy and the card-network rules; `policy check` lints them.",
    ),
    Lazy("db", "db", "Schema migrations: `db upgrade` creates or migrates the schema."),
    Lazy(
        "stripe",
        "stripe_cmd",
        "The Stripe processor: `stripe check` tests the key and the link; `stripe webhooks`"
        " lists the events to subscribe to.",
    ),
    Lazy(
        "sqs",
        "sqs_cmd",
        "SQS dispatch: `sqs setup` creates payments-retry-${ENV} and its dead-letter queue.",
    ),
    Lazy("events", "events", "The event outbox: list it, deliver it to the configured sinks."),
    Lazy("token", "token_cmd", "Bearer tokens of the HTTP API."),
)


class Payretry(PayretryGroup):
    lazy_commands = COMMANDS


app = typer.Typer(
    cls=Payretry,
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


def main(argv: list[str] | None = None) -> None:
    app(args=argv, prog_name="payretry")


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])
