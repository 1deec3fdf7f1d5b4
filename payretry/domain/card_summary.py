"""What `payretry card KEY` shows: a card's recent attempts and declines, the limits left and
the waits or blocks in force, counted exactly as the network rules count them. Pure."""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from payretry.domain.card_ledger import CardKey, EntryKind, Initiator, LedgerEntry, Network
from payretry.domain.durations import iso
from payretry.domain.network_rules import (
    WINDOW_24H,
    WINDOW_30D,
    NetworkRules,
    Verdict,
    authorizations,
    block_in_force,
    caps,
    check,
    mac_waits_in_force,
)


@dataclass(frozen=True, slots=True)
class LimitLeft:
    rule: str
    reason: str  # the limit in words
    initiated_by: Initiator | None  # Visa counts each apart; None: both together
    limit: int
    used: int
    left: int
    frees_at: datetime | None  # when the oldest counted entry leaves the window


@dataclass(frozen=True, slots=True)
class Hold:
    """A wait (until a time) or a block (until None) in force on the card."""

    rule: str
    reason: str
    until: datetime | None


@dataclass(frozen=True, slots=True)
class CardSummary:
    card: CardKey
    network: Network
    now: datetime
    attempts_24h: int
    attempts_30d: int
    declines_24h: int
    declines_30d: int
    limits: tuple[LimitLeft, ...]
    holds: tuple[Hold, ...]
    recent: tuple[LedgerEntry, ...]  # newest first
    next_try: Verdict  # a merchant-initiated attempt now

    def as_dict(self) -> dict[str, object]:
        """Plain JSON values (the `--json` document)."""
        return {
            "card": str(self.card),
            "key_kind": self.card.kind.value,
            "network": self.network.value,
            "now": iso(self.now),
            "attempts_24h": self.attempts_24h,
            "attempts_30d": self.attempts_30d,
            "declines_24h": self.declines_24h,
            "declines_30d": self.declines_30d,
            "limits": [
                {
                    "rule": x.rule,
                    "reason": x.reason,
                    "initiated_by": x.initiated_by.value if x.initiated_by else None,
                    "limit": x.limit,
                    "used": x.used,
                    "left": x.left,
                    "frees_at": iso(x.frees_at),
                }
                for x in self.limits
            ],
            "holds": [
                {"rule": h.rule, "reason": h.reason, "until": iso(h.until)} for h in self.holds
            ],
            "recent": [
                {
                    "at": iso(e.at),
                    "kind": e.kind.value,
                    "network": e.network.value,
                    "initiated_by": e.initiated_by.value,
                    "network_advice_code": e.network_advice_code,
                    "network_decline_code": e.network_decline_code,
                    "job_id": e.job_id,
                    "attempt_number": e.attempt_number,
                }
                for e in self.recent
            ],
            "next_try": {
                "verdict": self.next_try.kind.value,
                "at": iso(self.next_try.at),
                "rule": self.next_try.rule,
                "reason": self.next_try.reason,
                "source": self.next_try.source,
            },
        }


def summarize(
    rules: NetworkRules,
    history: Sequence[LedgerEntry],
    *,
    card: CardKey,
    network: Network | str | None,
    now: datetime,
    recent: int = 20,
) -> CardSummary:
    """The card's recent attempts and declines, the limits left and the holds in force, as
    `check` counts them."""
    net = Network.of(network)
    entries = authorizations(history, None)

    def count(window: timedelta, declines: bool) -> int:
        return sum(
            1
            for e in entries
            if e.at > now - window and (e.kind is EntryKind.DECLINE or not declines)
        )

    limits = []
    for who in Initiator:
        for cap in caps(rules, entries, net, who):
            if who is Initiator.CUSTOMER and cap.rule != "visa_reattempts_30d":
                continue  # counted for both initiators alike: shown once
            used, limit = cap.used(now), cap.limit(now)
            first = bisect.bisect_right(cap.counts, now - cap.window)
            limits.append(
                LimitLeft(
                    cap.rule,
                    cap.words.format(limit=limit),
                    who if cap.rule == "visa_reattempts_30d" else None,
                    limit,
                    used,
                    max(0, limit - used),
                    cap.counts[first] + cap.window if used else None,
                )
            )
    holds = [Hold(h.rule, h.reason, h.until) for h in mac_waits_in_force(rules, entries, net, now)]
    block = block_in_force(rules, entries, net, now, None)
    if block is not None:
        holds.append(Hold(block.rule, block.reason, None))
    return CardSummary(
        card,
        net,
        now,
        count(WINDOW_24H, False),
        count(WINDOW_30D, False),
        count(WINDOW_24H, True),
        count(WINDOW_30D, True),
        tuple(limits),
        tuple(holds),
        tuple(sorted(entries, key=lambda e: e.at, reverse=True)[:recent]),
        check(rules, entries, network=net, at=now),
    )
