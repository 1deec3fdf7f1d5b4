"""payretry queue: queue one failed payment, or a whole file of them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar, cast

import typer

from payretry.cli._context import AppContext, get_context
from payretry.cli._output import JsonOption, console, job_dict, job_panel, print_json, when
from payretry.cli._text import TextCommand
from payretry.clock import utcnow
from payretry.domain.models import Job, NewJob
from payretry.domain.validation import parse_metadata_pairs
from payretry.errors import InvalidInput

if TYPE_CHECKING:
    from payretry.domain.changes import Queued
    from payretry.domain.ports import Store
    from payretry.service.operations import Operations

T = TypeVar("T")


def queue(
    ctx: typer.Context,
    transaction_id: Annotated[
        str | None, typer.Argument(help="The failed payment's transaction id.", show_default=False)
    ] = None,
    error_code: Annotated[
        str | None, typer.Option("--error-code", help="Why it failed: processing_error, ...")
    ] = None,
    user_id: Annotated[
        str | None, typer.Option("--user-id", help="Opaque user id (no PII).")
    ] = None,
    amount: Annotated[
        str | None, typer.Option("--amount", help="Decimal, major units: 99.99; 1000 for JPY.")
    ] = None,
    currency: Annotated[str | None, typer.Option("--currency", help="ISO 4217: USD, JPY.")] = None,
    decline_code: Annotated[
        str | None,
        typer.Option("--decline-code", help="Issuer decline code, e.g. insufficient_funds."),
    ] = None,
    error_message: Annotated[
        str | None,
        typer.Option("--error-message", help="Message (card numbers, e-mails redacted)."),
    ] = None,
    payment_intent: Annotated[str | None, typer.Option("--payment-intent")] = None,
    customer: Annotated[str | None, typer.Option("--customer")] = None,
    payment_method: Annotated[str | None, typer.Option("--payment-method")] = None,
    checkout_session: Annotated[str | None, typer.Option("--checkout-session")] = None,
    card_network: Annotated[
        str | None,
        typer.Option("--card-network", help="The card's network: visa, mastercard, amex, ..."),
    ] = None,
    card_fingerprint: Annotated[
        str | None,
        typer.Option(
            "--card-fingerprint",
            help="The processor's card fingerprint (an opaque id; never card data).",
        ),
    ] = None,
    advice_code: Annotated[
        str | None,
        typer.Option(
            "--advice-code",
            help="Stripe's advice: try_again_later, do_not_try_again, confirm_card_data.",
        ),
    ] = None,
    network_advice_code: Annotated[
        str | None,
        typer.Option(
            "--network-advice-code",
            help="The network's advice (Mastercard MAC): 24-30 wait 1h-10d, 03/21 never.",
        ),
    ] = None,
    network_decline_code: Annotated[
        str | None,
        typer.Option(
            "--network-decline-code",
            help="The issuer's response code: 51, R0, ... (Visa category 1: never).",
        ),
    ] = None,
    window: Annotated[
        str | None, typer.Option("--window", help="Payment window from now, e.g. 24h.")
    ] = None,
    expires_at: Annotated[
        str | None, typer.Option("--expires-at", help="Payment window end, ISO 8601 with Z.")
    ] = None,
    priority: Annotated[
        str | None, typer.Option("--priority", help="Higher first (default: from the amount).")
    ] = None,
    metadata: Annotated[
        list[str] | None, typer.Option("--metadata", help="KEY=VALUE, repeatable.")
    ] = None,
    from_file: Annotated[  # a text, made a Path here: a Path parameter costs pydantic
        str | None,
        typer.Option(
            "--from-file", metavar="<path>", help="JSON Lines or CSV with the same fields."
        ),
    ] = None,
    json_output: Annotated[bool, JsonOption] = False,
) -> None:
    """Queue a failed payment for retry (idempotent while its job is active)."""
    app = get_context(ctx)
    settings = app.settings
    now = utcnow()
    if from_file is not None:
        if transaction_id is not None:
            raise InvalidInput(
                "give a TRANSACTION_ID or --from-file, not both", field="--from-file"
            )
        _queue_file(ctx, Path(from_file), json_output)
        return
    if transaction_id is None:
        raise InvalidInput("is required (or use --from-file)", field="transaction_id")
    from payretry.service.intake import new_job

    fields: dict[str, Any] = {
        "transaction_id": transaction_id,
        "error_code": error_code,
        "user_id": user_id,
        "amount": amount,
        "currency": currency,
        "decline_code": decline_code,
        "error_message": error_message,
        "payment_intent": payment_intent,
        "customer": customer,
        "payment_method": payment_method,
        "checkout_session": checkout_session,
        "card_network": card_network,
        "card_fingerprint": card_fingerprint,
        "advice_code": advice_code,
        "network_advice_code": network_advice_code,
        "network_decline_code": network_decline_code,
        "window": window,
        "expires_at": expires_at,
        "priority": priority,
        "metadata": parse_metadata_pairs(metadata or []),
    }
    request = new_job(fields, now=now, default_window=settings.retry.window)
    job, created = _checked_first(app, lambda ops: ops.queue(request, now))
    app.wiring.dispatch_new([job.id])  # sqs mode: a retry due within 15 minutes is sent now
    if json_output:
        print_json({**job_dict(job), "created": created})
        return
    out = console()
    verb = "Queued" if created else "Already queued (unchanged)"
    out.print(
        f"{verb}: {job.transaction_id}, {job.money}, {job.error_code}; "
        f"attempt {job.attempt_count + 1} of {job.max_attempts} at {when(job.next_retry_at)}"
    )
    out.print(job_panel(job))


def _queue_file(ctx: typer.Context, path: Path, json_output: bool) -> None:
    from payretry.service.intake import new_job, read_rows

    app = get_context(ctx)
    settings = app.settings
    now = utcnow()
    window = settings.retry.window  # read once: a view builds it on each read
    rows: list[tuple[int, NewJob]] = []
    invalid: list[tuple[int, str]] = []
    for line, fields in read_rows(path):
        if "__error__" in fields:
            invalid.append((line, str(fields["__error__"])))
            continue
        try:
            rows.append((line, new_job(fields, now=now, default_window=window)))
        except InvalidInput as exc:
            invalid.append((line, str(exc)))
    out = console(stderr=True)
    with out.status(f"queueing {len(rows)} rows", spinner="dots") if out.is_terminal else _null():
        result = _checked_first(
            app, lambda ops: ops.queue_many(rows, now, invalid=invalid), always=bool(invalid)
        )
    app.wiring.dispatch_new()  # sqs mode: retries due within 15 minutes are sent now
    if json_output:
        print_json({"rows": len(rows), "created": result.created, "existing": result.existing})
        return
    console().print(
        f"Queued {result.created} job(s) from {path}; {result.existing} already queued."
    )


class _WouldWrite(Exception):
    """The check against an empty store found nothing wrong and reached the first write."""


class _EmptyStore:
    """A store with no jobs that refuses to be written: what a database not yet created
    holds. Checking a queue against it first finds every refusal the input alone can cause,
    so a failed queue never leaves a new database file behind."""

    def active_for(self, transaction_ids: Sequence[str]) -> dict[str, Job]:
        return {}

    def succeeded_for(self, transaction_ids: Sequence[str]) -> set[str]:
        return set()

    def insert(self, queued: Queued, *, bound: object = None) -> Job:
        raise _WouldWrite

    def insert_many(self, queued: Sequence[Queued], *, bound: object = None) -> None:
        raise _WouldWrite


def _checked_first(app: AppContext, work: Callable[[Operations], T], *, always: bool = False) -> T:
    """Run `work` against the store; first against an empty one when the database does not
    exist yet (or `always`, when the input is already known to be refused), so that input
    refused for its own sake (bad rows, a code never retried, a closed window) creates no
    database file."""
    from payretry.service.operations import Operations
    from payretry.store.engine import new_sqlite_file

    if always or new_sqlite_file(app.settings.database.url) is not None:
        try:
            work(Operations(cast("Store", _EmptyStore()), app.wiring.policy))
        except _WouldWrite:
            pass
    # The real pass also asks the processor whether the payment is retried elsewhere (Stripe
    # Billing): a question the empty pass never asks, so it creates no database either.
    return work(app.wiring.operations(queueing=True))


class _null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *args: object) -> None:
        return None


def register(app: typer.Typer) -> None:
    app.command("queue", cls=TextCommand)(queue)
