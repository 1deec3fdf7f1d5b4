"""The card-network rules in force, one line per rule: what `payretry policy` shows beside the
policy table. Pure."""

from __future__ import annotations

from dataclasses import dataclass

from payretry.domain.durations import format_duration
from payretry.domain.network_rules import (
    GENERIC_SOURCE,
    MAC_MEANING,
    MAC_SOURCE,
    TPE_SOURCE,
    VISA_SOURCE,
    NetworkRules,
    wait_words,
)


@dataclass(frozen=True, slots=True)
class RuleLine:
    rule: str  # the id `check` names it by
    network: str
    setting: str  # the rule as configured, in words
    source: str

    def as_dict(self) -> dict[str, str]:
        return {
            "rule": self.rule,
            "network": self.network,
            "setting": self.setting,
            "source": self.source,
        }


def _codes(codes: frozenset[str]) -> str:
    return ", ".join(sorted(codes)) or "none"


def rule_set(rules: NetworkRules) -> list[RuleLine]:
    block = format_duration(rules.hard_decline_block)
    earlier = "; ".join(
        f"{limit} before {at.date().isoformat()}" for at, limit in rules.visa_earlier_limits
    )
    lines = [
        RuleLine(
            "visa_category_1",
            "visa",
            f"response codes {_codes(rules.visa_category_1_codes)}: never reattempted; the "
            f"card's other jobs stop for {block}",
            f"{VISA_SOURCE}: category 1, issuer will never approve",
        ),
        RuleLine(
            "visa_reattempts_30d",
            "visa",
            f"at most {rules.visa_reattempts_per_30d} reattempts per card in 30 days"
            + (f" ({earlier})" if earlier else "")
            + ", merchant- and customer-initiated counted apart",
            f"{VISA_SOURCE}: categories 2-4",
        ),
    ]
    for mac in sorted(rules.mac_new_card_codes):
        lines.append(
            RuleLine(
                f"mastercard_mac_{mac}",
                "mastercard",
                f"MAC {mac}: retried only with new card data",
                f"{MAC_SOURCE}: MAC {mac}",
            )
        )
    for mac in sorted(rules.mac_never_codes):
        lines.append(
            RuleLine(
                f"mastercard_mac_{mac}",
                "mastercard",
                f"MAC {mac}: never retried; the card's other jobs stop for {block}",
                f"{MAC_SOURCE}: MAC {mac}",
            )
        )
    for mac, wait in sorted(rules.mac_waits.items()):
        meaning = MAC_MEANING.get(mac, ("", "a wait"))[1]
        lines.append(
            RuleLine(
                f"mastercard_mac_{mac}",
                "mastercard",
                f"MAC {mac} ({meaning}): the next attempt on the card no sooner than "
                f"{wait_words(wait)} after the decline",
                f"{MAC_SOURCE}: MAC {mac}",
            )
        )
    lines += [
        RuleLine(
            "mastercard_declines_24h",
            "mastercard",
            f"at most {rules.mc_declines_per_24h} declines per card in 24 hours",
            TPE_SOURCE,
        ),
        RuleLine(
            "mastercard_declines_30d",
            "mastercard",
            f"at most {rules.mc_declines_per_30d} declines per card in 30 days",
            TPE_SOURCE,
        ),
        RuleLine(
            "other_attempts_30d",
            "amex, discover, diners, jcb, unionpay",
            f"at most {rules.other_attempts_per_30d} attempts per card in 30 days"
            if rules.other_attempts_per_30d is not None
            else "no cap",
            GENERIC_SOURCE,
        ),
    ]
    if rules.unknown_network_strictest:
        lines.append(
            RuleLine(
                "unknown_network",
                "unknown",
                "a card of unknown network keeps both Visa's and Mastercard's limits",
                "payretry ([network] unknown_network_strictest)",
            )
        )
    return lines
