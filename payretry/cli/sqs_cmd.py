"""payretry sqs: set up the queues; review and redrive the dead-letter queue."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from payretry.cli._context import get_context
from payretry.cli._output import JsonOption, console, print_json, when
from payretry.errors import InvalidInput

sqs_app = typer.Typer(
    help="SQS dispatch: `sqs setup` creates payments-retry-${ENV} and its dead-letter queue."
)
dlq_app = typer.Typer(help="The dead-letter queue: list dead messages, send them back.")
sqs_app.add_typer(dlq_app, name="dlq")


@sqs_app.command("setup")
def setup(ctx: typer.Context, json_output: Annotated[bool, JsonOption] = False) -> None:
    """Create the queue and its dead-letter queue (redrive policy); existing ones are kept."""
    from payretry.dispatch.sqs import setup_queues

    result = setup_queues(get_context(ctx).wiring.sqs_settings())
    if json_output:
        print_json(result.as_dict())
        return
    out = console()
    for name, url, created in (
        (result.dlq, result.dlq_url, result.dlq_created),
        (result.queue, result.queue_url, result.queue_created),
    ):
        out.print(f"{'Created' if created else 'Exists, kept as it is'}: {name} ({url})")
    policy = result.redrive_policy
    if policy:
        out.print(
            f"Redrive: after {policy.get('maxReceiveCount')} receives to "
            f"{policy.get('deadLetterTargetArn')}"
        )
    else:
        out.print(f"warning: {result.queue} has no redrive policy; dead letters are not kept")


@dlq_app.command("list")
def dlq_list(
    ctx: typer.Context,
    limit: Annotated[
        int, typer.Option("--limit", min=1, max=10**9, help="Show at most this many.")
    ] = 1000,
    json_output: Annotated[bool, JsonOption] = False,
) -> None:
    """Show the dead messages with the job each names (each is received, then given back)."""
    from payretry.service.deadletters import list_dead

    wiring = get_context(ctx).wiring
    dlq = wiring.queue(dead_letters=True)
    letters = list_dead(dlq, wiring.store, limit=limit)
    if json_output:
        print_json({"queue": dlq.name, "messages": [d.as_dict() for d in letters]})
        return
    out = console()
    if not letters:
        out.print(f"{dlq.name} is empty.")
        return
    table = Table(title=f"{len(letters)} dead message(s) in {dlq.name}")
    for column in ("message id", "receives", "sent", "transaction", "attempt", "job", "problem"):
        table.add_column(column, overflow="fold")
    for d in letters:
        m, job = d.message, d.job
        table.add_row(
            d.message_id,
            str(d.receive_count),
            when(d.sent_at),
            m.payment_session_id if m else "-",
            str(m.attempt_number) if m else "-",
            f"{job.state.value}, {job.attempt_count}/{job.max_attempts} attempts" if job else "-",
            d.problem or "-",
        )
    out.print(table)


@dlq_app.command("redrive")
def dlq_redrive(
    ctx: typer.Context,
    message_ids: Annotated[
        list[str] | None, typer.Argument(help="Message ids from `sqs dlq list`.")
    ] = None,
    all_: Annotated[bool, typer.Option("--all", help="Send back every dead message.")] = False,
    json_output: Annotated[bool, JsonOption] = False,
) -> None:
    """Send dead messages back to the queue after review (receive, send, delete)."""
    from payretry.service.deadletters import redrive

    if all_ == bool(message_ids):
        raise InvalidInput("give MESSAGE_ID(s) or --all, not both nor neither", field="--all")
    wiring = get_context(ctx).wiring
    dlq = wiring.queue(dead_letters=True)
    queue = wiring.queue()
    moved = redrive(dlq, queue, wiring.store, None if all_ else message_ids)
    if json_output:
        print_json(
            {
                "from": dlq.name,
                "to": queue.name,
                "moved": [{**d.as_dict(), "new_message_id": new} for d, new in moved],
            }
        )
        return
    out = console()
    for d, new in moved:
        out.print(f"{d.message_id} -> {queue.name} as {new}")
    out.print(f"Sent {len(moved)} message(s) back to {queue.name}.")


def register(app: typer.Typer) -> None:
    app.add_typer(sqs_app, name="sqs")
