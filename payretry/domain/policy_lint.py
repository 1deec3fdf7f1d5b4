"""Lint a retry policy (the table and its `[policy.*]` overrides) against the card-network rules.
Pure: `payretry policy check` prints the findings and exits 3 when one is an error.

Errors: the table would itself make a retry the networks forbid or fine, which the network rules
would then have to stop at run time:
- a row that retries a Visa category 1 code, or a Mastercard MAC 03/21 ("do not try again") or
  MAC 01 ("new account information") decline: every such reattempt is fined;
- a row whose schedule alone exceeds Visa's reattempts per 30 days or Mastercard's declines per
  24 hours or per 30 days (every attempt assumed declined, the decline that queued the job
  counted as the first, delays shortened by the jitter).
Warnings: a row that MAC 02 or 24-30 declines follow (`try_again_later`) waits less than the MAC
asks. Not an error: the network rules hold every retry until the MAC's wait has passed, so the
row's shorter delay is simply not followed after such a decline; the warning says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from payretry.domain.durations import format_duration
from payretry.domain.network_rules import (
    MAC_MEANING,
    MAC_SOURCE,
    STRIPE_VISA_CATEGORY_1,
    TPE_SOURCE,
    VISA_SOURCE,
    WINDOW_24H,
    WINDOW_30D,
    NetworkRules,
    wait_words,
)
from payretry.domain.policy import PolicyRow, RetryPolicy

# Stripe's own decline codes that mean a Mastercard MAC (beside the advice codes MACs map to).
STRIPE_MAC: dict[str, str] = {"new_account_information_available": "01"}
# How a card failure reaches the policy: the error code a decline carries.
_DECLINED = "card_declined"


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class Violation:
    row: str  # the policy row's code
    rule: str  # the network rule's id, as `check` names it
    sentence: str
    source: str
    severity: Severity = Severity.ERROR
    row_source: str = ""  # where the row came from (a citation, or the config file)

    def as_dict(self) -> dict[str, str]:
        return {
            "row": self.row,
            "rule": self.rule,
            "severity": self.severity.value,
            "sentence": self.sentence,
            "source": self.source,
            "row_source": self.row_source,
        }


def errors(violations: Sequence[Violation]) -> list[Violation]:
    return [v for v in violations if v.severity is Severity.ERROR]


def schedule(policy: RetryPolicy, row: PolicyRow) -> list[timedelta]:
    """When each attempt of a job on this row falls, from the decline that queued it, at the
    shortest the jitter allows."""
    offsets, at = [], timedelta(0)
    for number in range(1, policy.limit(row) + 1):
        at += row.delay_before(number) * (1 - policy.jitter)
        offsets.append(at)
    return offsets


def busiest(offsets: Sequence[timedelta], window: timedelta) -> int:
    """The most offsets inside any window (t - window, t], as the network rules count."""
    return max(
        (sum(1 for o in offsets if t - window < o <= t) for t in offsets),
        default=0,
    )


def lint(policy: RetryPolicy, rules: NetworkRules | None = None) -> list[Violation]:
    """Every finding, errors first, each once per row and rule."""
    rules = rules or NetworkRules()
    found: dict[tuple[str, str], Violation] = {}
    for finding in [*_hard_codes(policy, rules), *_counts(policy, rules), *_waits(policy, rules)]:
        found.setdefault((finding.row, finding.rule), finding)
    return sorted(found.values(), key=lambda v: (v.severity is not Severity.ERROR, v.row, v.rule))


def _retrying(policy: RetryPolicy, code: str) -> PolicyRow | None:
    """The row a card decline with this code follows, if that row retries it."""
    row = policy.lookup(_DECLINED, code).row
    return row if policy.limit(row) > 0 else None


def _retried(policy: RetryPolicy, code: str, row: PolicyRow) -> str:
    times = f"up to {policy.limit(row)} times"
    if row.code == code:
        return f"decline code {code} is retried {times}"
    return f"decline code {code} follows row {row.code!r}, which retries it {times}"


def _at(offsets: Sequence[timedelta]) -> str:
    shown = ", ".join(format_duration(o) for o in offsets[:8])
    return shown + (f" ... {format_duration(offsets[-1])}" if len(offsets) > 8 else "")


def _hard_codes(policy: RetryPolicy, rules: NetworkRules) -> list[Violation]:
    out = []
    for code, visa in STRIPE_VISA_CATEGORY_1.items():
        hard = [c for c in visa if c in rules.visa_category_1_codes]
        row = _retrying(policy, code)
        if hard and row is not None:
            out.append(
                Violation(
                    row.code,
                    "visa_category_1",
                    f"{_retried(policy, code, row)}, but it is a Visa"
                    f" category 1 decline (response {', '.join(hard)}): the issuer "
                    "will never approve and every reattempt is fined",
                    f"{VISA_SOURCE}: category 1, issuer will never approve",
                    row_source=row.source,
                )
            )
    hard_macs = sorted((rules.mac_never_codes | rules.mac_new_card_codes) & set(MAC_MEANING))
    macs = [(m, MAC_MEANING[m][0]) for m in hard_macs]
    macs += [(mac, code) for code, mac in STRIPE_MAC.items() if mac in rules.mac_new_card_codes]
    for mac, code in macs:
        row = _retrying(policy, code)
        if row is None:
            continue
        why = (
            "no retry on the card for 30 days"
            if mac in rules.mac_never_codes
            else "a retry only with new card data"
        )
        out.append(
            Violation(
                row.code,
                f"mastercard_mac_{mac}",
                f"{_retried(policy, code, row)}, but "
                f"Mastercard MAC {mac} ({MAC_MEANING[mac][1]}) means {why}",
                f"{MAC_SOURCE}: MAC {mac}",
                row_source=row.source,
            )
        )
    return out


def _counts(policy: RetryPolicy, rules: NetworkRules) -> list[Violation]:
    out = []
    for row in policy.table():
        offsets = schedule(policy, row)
        if not offsets:
            continue
        waits = _at(offsets)
        checks = (
            (
                "visa_reattempts_30d",
                busiest(offsets, WINDOW_30D),
                rules.visa_reattempts_per_30d,
                "reattempts in 30 days; Visa allows",
                f"{VISA_SOURCE}: 20 reattempts per card in 30 days",
            ),
            (
                "mastercard_declines_24h",
                busiest([timedelta(0), *offsets], WINDOW_24H),
                rules.mc_declines_per_24h,
                "declines in 24 hours (the one that queued the job included); Mastercard allows",
                TPE_SOURCE,
            ),
            (
                "mastercard_declines_30d",
                busiest([timedelta(0), *offsets], WINDOW_30D),
                rules.mc_declines_per_30d,
                "declines in 30 days (the one that queued the job included); Mastercard allows",
                TPE_SOURCE,
            ),
        )
        for rule, count, limit, words, source in checks:
            if count > limit:
                out.append(
                    Violation(
                        row.code,
                        rule,
                        f"row {row.code!r} alone makes {count} {words} {limit} per card "
                        f"(attempts at {waits} after the decline)",
                        source,
                        row_source=row.source,
                    )
                )
    return out


def _waits(policy: RetryPolicy, rules: NetworkRules) -> list[Violation]:
    out = []
    for mac, wait in sorted(rules.mac_waits.items()):
        if mac not in MAC_MEANING:
            continue
        row = _retrying(policy, MAC_MEANING[mac][0])
        if row is None:
            continue
        delays = [
            row.delay_before(n) * (1 - policy.jitter) for n in range(1, policy.limit(row) + 1)
        ]
        short = [(n, d) for n, d in enumerate(delays, 1) if d < wait]
        if not short:
            continue
        number, delay = min(short, key=lambda nd: nd[1])
        out.append(
            Violation(
                row.code,
                f"mastercard_mac_{mac}",
                f"row {row.code!r} waits {format_duration(delay)} before attempt {number}, "
                f"but after a Mastercard MAC {mac} decline ({MAC_MEANING[mac][1]}) the network "
                f"rules wait {wait_words(wait)}: the row's shorter delay is not followed there",
                f"{MAC_SOURCE}: MAC {mac}",
                Severity.WARNING,
                row.source,
            )
        )
    return out
