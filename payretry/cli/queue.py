"""payretry queue: queue one failed payment, or a whole file of them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from payretry.cli._context import get_context
from payretry.cli._output import JsonOption, console, job_dict, job_panel, print_json, when
from payretry.clock import utcnow
from payretry.domain.models import NewJob
from payretry.domain.validation import parse_metadata_pairs
from payretry.errors import InvalidInput


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
    from_file: Annotated[
        Path | None, typer.Option("--from-file", help="JSON Lines or CSV with the same fields.")
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
        _queue_file(ctx, from_file, json_output)
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
        "window": window,
        "expires_at": expires_at,
        "priority": priority,
        "metadata": parse_metadata_pairs(metadata or []),
    }
    request = new_job(fields, now=now, default_window=settings.retry.window)
    job, created = app.wiring.operations(queueing=True).queue(request, now)
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
    rows: list[tuple[int, NewJob]] = []
    invalid: list[tuple[int, str]] = []
    for line, fields in read_rows(path):
        if "__error__" in fields:
            invalid.append((line, str(fields["__error__"])))
            continue
        try:
            rows.append((line, new_job(fields, now=now, default_window=settings.retry.window)))
        except InvalidInput as exc:
            invalid.append((line, str(exc)))
    out = console(stderr=True)
    with out.status(f"queueing {len(rows)} rows", spinner="dots") if out.is_terminal else _null():
        result = app.wiring.operations(queueing=True).queue_many(rows, now, invalid=invalid)
    app.wiring.dispatch_new()  # sqs mode: retries due within 15 minutes are sent now
    if json_output:
        print_json({"rows": len(rows), "created": result.created, "existing": result.existing})
        return
    console().print(
        f"Queued {result.created} job(s) from {path}; {result.existing} already queued."
    )


class _null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *args: object) -> None:
        return None


def register(app: typer.Typer) -> None:
    app.command("queue")(queue)
