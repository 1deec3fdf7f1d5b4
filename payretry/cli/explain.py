"""payretry explain: a job's story, attempt by attempt, in plain sentences."""

from __future__ import annotations

from typing import Annotated

import typer

from payretry.cli._context import get_context
from payretry.cli._output import JsonOption, console, print_json
from payretry.cli.events import describe_event


def explain(
    ctx: typer.Context,
    transaction_id: Annotated[str, typer.Argument(help="The transaction id.")],
    json_output: Annotated[bool, JsonOption] = False,
) -> None:
    """Tell a job's story: what failed, which policy row applied, why the next retry is then,
    why it stopped; then its events and where each has been delivered."""
    from payretry.service.explain import job_story
    from payretry.service.views import job_events

    wiring = get_context(ctx).wiring
    job = wiring.operations().status(transaction_id)
    steps = job_story(wiring.store, job, wiring.policy)
    events = job_events(wiring.store, job.id, wiring.sink_names)
    if json_output:
        print_json(
            {
                "transaction_id": job.transaction_id,
                "job_id": job.id,
                "state": job.state.value,
                "story": [step.as_dict() for step in steps],
                "events": events,
            }
        )
        return
    out = console()
    for step in steps:
        out.print(f"- {step.text}", soft_wrap=True, markup=False)
    if events:
        out.print(f"Events ({len(events)}, ids {job.id}:<attempt>:<type>):")
        for event in events:
            out.print(f"- {describe_event(event)}", soft_wrap=True, markup=False)


def register(app: typer.Typer) -> None:
    app.command("explain")(explain)
