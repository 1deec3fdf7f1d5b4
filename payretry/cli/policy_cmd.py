"""payretry policy: the effective strategy table and the card-network rules in force; `policy
check` lints the table against those rules."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from payretry.cli._context import get_context
from payretry.cli._output import JsonOption, console, print_json
from payretry.domain.durations import format_duration
from payretry.errors import Refused

policy_app = typer.Typer(
    name="policy",
    help="The retry policy and the card-network rules; `policy check` lints them.",
    invoke_without_command=True,
    rich_markup_mode=None,
)


@policy_app.callback()
def policy(ctx: typer.Context, json_output: Annotated[bool, JsonOption] = False) -> None:
    """Show the effective retry policy (one row per code, the default, the global cap) and the
    card-network rules in force."""
    if ctx.invoked_subcommand is not None:
        return
    from payretry.domain.rule_set import rule_set

    effective = get_context(ctx).settings.policy()
    rows: list[dict[str, Any]] = [
        {
            "code": row.code,
            "retry": row.retry and effective.limit(row) > 0,
            "max_attempts": effective.limit(row),
            "delays": [format_duration(d) for d in row.delays],
            "source": row.source,
        }
        for row in effective.table()
    ]
    rules = [line.as_dict() for line in rule_set(effective.network)]
    if json_output:
        print_json(
            {
                "global_cap": effective.cap,
                "jitter": effective.jitter,
                "rows": rows,
                "network_rules": rules,
            }
        )
        return
    table = Table(title=f"retry policy (global cap {effective.cap}, jitter {effective.jitter})")
    for column in ("code", "retry", "max attempts", "delays", "source"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(
            str(row["code"]),
            "yes" if row["retry"] else "never",
            str(row["max_attempts"]),
            ", ".join(row["delays"]) or "-",
            str(row["source"]),
        )
    out = console()
    out.print(table)
    out.print("Lookup order: decline code, then error code, then default.")
    network = Table(title=escape("card-network rules in force (per card, across jobs; [network])"))
    for column in ("rule", "network", "setting", "source"):
        network.add_column(column, overflow="fold")
    for line in rules:
        network.add_row(*(escape(line[k]) for k in ("rule", "network", "setting", "source")))
    out.print(network)


@policy_app.command("check")
def check(ctx: typer.Context, json_output: Annotated[bool, JsonOption] = False) -> None:
    """Lint the policy table and its [policy.*] overrides against the card-network rules:
    exit 3 on an error (a row that retries a never-retry code, a schedule that alone breaks a
    limit); warnings are printed and exit 0."""
    from payretry.domain.policy_lint import errors, lint

    effective = get_context(ctx).settings.policy()
    found = lint(effective, effective.network)
    bad = errors(found)
    if json_output:
        print_json(
            {
                "ok": not bad,
                "errors": len(bad),
                "warnings": len(found) - len(bad),
                "violations": [v.as_dict() for v in found],
            }
        )
    else:
        out = console()
        for v in found:
            where = f" [{v.row_source}]" if v.row_source else ""
            out.print(
                f"{v.severity.value}: {v.rule}: {v.sentence} (source: {v.source}){where}",
                soft_wrap=True,
                markup=False,
            )
        if not found:
            out.print("The policy keeps every card-network rule.")
    if bad and json_output:
        raise typer.Exit(3)  # the document says why; one JSON document on stdout
    if bad:
        raise Refused(
            f"{len(bad)} finding(s) are errors: the policy would make retries the card "
            "networks forbid or fine"
        )


def register(app: typer.Typer) -> None:
    app.add_typer(policy_app, name="policy")
