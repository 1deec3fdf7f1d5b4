"""Output: a JSON document on stdout for --json, rich tables otherwise; errors on stderr.

Rich, the domain and the read models are imported where they are used: every command and
every error passes through here, and `--json` or an error needs none of them."""

from __future__ import annotations

import json
import os
import sys
from contextvars import ContextVar
from datetime import datetime
from typing import TYPE_CHECKING, Any

import typer

from payretry.errors import PayretryError

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    from payretry.domain.models import Job

JSON_MODE: ContextVar[bool] = ContextVar("payretry_json", default=False)


def set_json(value: bool) -> bool:
    JSON_MODE.set(bool(value))
    return value


JsonOption = typer.Option(
    "--json", help="Print one JSON document on stdout.", callback=set_json, is_eager=True
)


def job_dict(job: Job) -> dict[str, Any]:
    """The JSON shape of a job, shared with the HTTP API (payretry.service.views)."""
    from payretry.service.views import job_dict as as_dict

    return as_dict(job)


def console(stderr: bool = False) -> Console:
    from rich.console import Console

    return Console(
        stderr=stderr,
        no_color=bool(os.environ.get("NO_COLOR")) or None,
        highlight=False,
        soft_wrap=False,
    )


def print_json(document: Any) -> None:
    sys.stdout.write(json.dumps(document, indent=2, default=_default) + "\n")
    sys.stdout.flush()


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        from payretry.domain.durations import iso

        return iso(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")


def when(value: datetime | None) -> str:
    """A time for people: ISO 8601 UTC to the second."""
    from payretry.domain.durations import iso

    return (iso(value.replace(microsecond=0)) if value is not None else None) or "-"


def jobs_table(jobs: list[Job], title: str | None = None) -> Table:
    from rich.table import Table

    table = Table(title=title)
    for column in ("transaction", "state", "amount", "error", "attempts", "next retry", "priority"):
        table.add_column(column, overflow="fold")
    for job in jobs:
        code = job.error_code + (f"/{job.decline_code}" if job.decline_code else "")
        table.add_row(
            job.transaction_id,
            job.state.value,
            str(job.money),
            code,
            f"{job.attempt_count}/{job.max_attempts}",
            when(job.next_retry_at),
            str(job.priority),
        )
    return table


def job_panel(job: Job) -> Table:
    from rich.table import Table

    from payretry.service.views import card_key_text

    table = Table(show_header=False, title=f"retry job for {job.transaction_id}")
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    rows: list[tuple[str, str]] = [
        ("state", job.state.value),
        ("reason", job.reason or "-"),
        ("amount", str(job.money)),
        ("user", job.user_id),
        ("error", job.error_code + (f" (decline {job.decline_code})" if job.decline_code else "")),
        ("message", job.error_message or "-"),
        (
            "attempts",
            f"{job.attempt_count} of {job.max_attempts} ({job.attempts_remaining} remaining)",
        ),
        ("next retry", when(job.next_retry_at)),
        ("window ends", when(job.expires_at)),
        ("priority", str(job.priority)),
        ("created", when(job.created_at)),
        ("job id", job.id),
    ]
    rows += [(name.replace("_", " "), ref) for name, ref in job.refs.as_dict().items() if ref]
    card = card_key_text(job)
    if card is not None:
        rows.append(("card", card))
    if job.network_rule:
        rows.append(("network rule", job.network_rule))
    if job.action:
        rows += [
            ("waiting on", f"checkout session {job.action.ref}"),
            ("checkout url", job.action.url or "-"),
            ("checkout expires", when(job.action.expires_at)),
        ]
    rows += [(f"metadata {k}", v) for k, v in job.metadata.items()]
    for name, value in rows:
        table.add_row(name, value)
    return table


def attempts_table(job: Job) -> Table:
    from rich.table import Table

    table = Table(title="attempts")
    for column in ("#", "outcome", "error", "started", "decision", "idempotency key"):
        table.add_column(column, overflow="fold")
    for a in job.attempts:
        error = (a.error_code or "") + (f"/{a.decline_code}" if a.decline_code else "")
        table.add_row(
            str(a.number),
            a.outcome.value,
            error or "-",
            when(a.started_at),
            a.decision or "-",
            a.idempotency_key,
        )
    return table


def clean(text: str) -> str:
    """Text from anywhere (a driver's error, a rejected value) as payretry prints it: secrets
    masked, card-like numbers and e-mail addresses redacted."""
    from payretry.domain.validation import redact
    from payretry.masking import mask_secrets

    return mask_secrets(redact(text))


def render_error(
    exc: PayretryError, *, as_json: bool | None = None, hint: str | None = None
) -> None:
    """The error as one line on stderr (and `hint`, a second line, when given); with --json
    also as the one document on stdout. Every part passes through clean()."""
    if JSON_MODE.get() if as_json is None else as_json:
        print_json(
            {
                "error": {
                    "kind": exc.kind,
                    "message": clean(exc.message),
                    "field": clean(exc.field) if exc.field else exc.field,
                    "exit_code": exc.exit_code,
                }
            }
        )
    # One line on stderr, even when a driver's message spans several (psycopg's does).
    sys.stderr.write("error: " + " ".join(clean(str(exc)).split()) + "\n")
    if hint:
        sys.stderr.write(hint + "\n")
