"""payretry list: jobs by state, user or due time."""

from __future__ import annotations

from typing import Annotated

import typer

from payretry.cli._context import get_context
from payretry.cli._output import JsonOption, console, job_dict, jobs_table, print_json
from payretry.clock import utcnow
from payretry.domain.models import JobState
from payretry.errors import InvalidInput


def list_jobs(
    ctx: typer.Context,
    state: Annotated[
        str | None, typer.Option("--state", help="scheduled, running, succeeded, failed, ...")
    ] = None,
    user_id: Annotated[str | None, typer.Option("--user-id", help="Only this user's jobs.")] = None,
    due: Annotated[bool, typer.Option("--due", help="Only jobs due now, in claim order.")] = False,
    limit: Annotated[
        int, typer.Option("--limit", help="At most this many.", min=1, max=10**9)
    ] = 100,
    json_output: Annotated[bool, JsonOption] = False,
) -> None:
    """List retry jobs, newest first (or in claim order with --due)."""
    wanted: JobState | None = None
    if state is not None:
        try:
            wanted = JobState(state)
        except ValueError:
            known = ", ".join(s.value for s in JobState)
            raise InvalidInput(f"{state!r} is not a state ({known})", field="--state") from None
    app = get_context(ctx)
    jobs = app.store.list_jobs(
        state=wanted, user_id=user_id, due_at=utcnow() if due else None, limit=limit
    )
    if json_output:
        print_json({"jobs": [job_dict(j) for j in jobs], "count": len(jobs)})
        return
    out = console()
    if not jobs:
        out.print("No jobs match.")
        return
    out.print(jobs_table(jobs))


def register(app: typer.Typer) -> None:
    app.command("list")(list_jobs)
