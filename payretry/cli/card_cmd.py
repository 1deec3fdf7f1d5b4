"""payretry card: one card's ledger, the limits left and the waits or blocks in force."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from payretry.cli._context import get_context
from payretry.cli._output import JsonOption, console, print_json, when
from payretry.clock import utcnow
from payretry.domain.card_ledger import CardKey, KeyKind, Network
from payretry.domain.durations import format_duration
from payretry.errors import NotFound


def card(
    ctx: typer.Context,
    key: Annotated[
        str,
        typer.Argument(
            help="The card: card:NETWORK:FINGERPRINT, payment_method:ID, customer:ID, pm_..., "
            "cus_... (`status` shows a job's).",
            show_default=False,
        ),
    ],
    json_output: Annotated[bool, JsonOption] = False,
) -> None:
    """Show a card's recent attempts and declines (from every job), the network limits left
    and the waits or blocks in force, as the card-network rules count them."""
    from payretry.domain.card_summary import summarize

    card_key = CardKey.parse(key)
    wiring = get_context(ctx).wiring
    rules = wiring.policy.network
    now = utcnow()
    history = wiring.store.card_history(card_key, now - rules.lookback)
    if not history:
        raise NotFound(
            f"no authorization recorded on {card_key} in the last {format_duration(rules.lookback)}"
        )
    network = (
        Network.of(card_key.value.partition(":")[0])
        if card_key.kind is KeyKind.CARD
        else history[-1].network
    )
    summary = summarize(rules, history, card=card_key, network=network, now=now)
    if json_output:
        print_json(summary.as_dict())
        return
    out = console()
    out.print(
        f"{summary.card} ({summary.network.value}): {summary.attempts_24h} authorization(s) in "
        f"24 hours, {summary.attempts_30d} in 30 days; {summary.declines_24h} decline(s) in 24 "
        f"hours, {summary.declines_30d} in 30 days."
    )
    limits = Table(title="limits")
    for column in ("rule", "initiated by", "used", "limit", "left", "a slot frees at"):
        limits.add_column(column, overflow="fold")
    for x in summary.limits:
        limits.add_row(
            x.rule,
            x.initiated_by.value if x.initiated_by else "any",
            str(x.used),
            str(x.limit),
            str(x.left),
            when(x.frees_at),
        )
    out.print(limits)
    for hold in summary.holds:
        until = f" (until {when(hold.until)})" if hold.until else ""
        out.print(f"- {hold.reason}{until}", soft_wrap=True, markup=False)
    recent = Table(title="recent authorizations (newest first)")
    for column in ("at", "kind", "job", "attempt", "MAC", "response code"):
        recent.add_column(column, overflow="fold")
    for e in summary.recent:
        recent.add_row(
            when(e.at),
            e.kind.value,
            e.job_id or "-",
            str(e.attempt_number) if e.attempt_number is not None else "-",
            e.network_advice_code or "-",
            e.network_decline_code or "-",
        )
    out.print(recent)
    verdict = summary.next_try
    out.print(f"Next merchant-initiated attempt: {verdict.kind.value}: {verdict.reason}.")


def register(app: typer.Typer) -> None:
    app.command("card")(card)
