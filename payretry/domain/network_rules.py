"""Card-network retry rules, per card and across jobs. Pure: a card's ledger in, a verdict out.

A job decides its own schedule; the networks decide per card. `check` reads the card's ledger
(every authorization payretry sent on that card, whichever job sent it) and says whether an
attempt at a given time keeps every rule, the earliest time that does, or that no time will.

Sources, each rule citing its own below:
- Visa Rules, authorization reattempts (the decline response categories of April 2021 and the
  excessive reattempt fees of the Visa Integrity Fee program): category 1 "issuer will never
  approve" codes are never reattempted; after a category 2-4 decline at most 15 reattempts per
  card in 30 days, 20 from 2025-05-25. Visa counts customer- and merchant-initiated apart.
- Mastercard Merchant Advice Codes (MAC, returned with a decline) and Mastercard Transaction
  Processing Excellence (TPE): "excessive authorization attempts" (more than 10 declines on a card
  in 24 hours; more than 35 in 30 days, from 2023-11-01) and "MAC transaction excellence" (a fee
  for any retry within 30 days of MAC 03 or 21).

Counting is per card across all its jobs and amounts: stricter than the networks, which count per
card, merchant and amount, so no reading of the rules finds a card over a limit.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from types import MappingProxyType

from payretry.domain.card_ledger import (
    EntryKind,
    Initiator,
    LedgerEntry,
    Network,
    network_code,
)
from payretry.domain.durations import format_duration, iso, parse_duration
from payretry.errors import ConfigError, InvalidInput

HOUR, DAY = timedelta(hours=1), timedelta(days=1)
WINDOW_24H, WINDOW_30D = DAY, 30 * DAY

# -- the rules as data -----------------------------------------------------------------------

VISA_SOURCE = (
    "Visa Rules, authorization reattempts (decline categories 1-4, Visa Integrity Fee program)"
)
MAC_SOURCE = "Mastercard Merchant Advice Codes (Transaction Processing Excellence)"
TPE_SOURCE = (
    "Mastercard Transaction Processing Excellence, excessive authorization attempts "
    "(10 declines per card in 24 hours; 35 in 30 days)"
)
GENERIC_SOURCE = "payretry's cap for networks that publish no retry rule ([network] setting)"

# Category 1, "issuer will never approve": never reattempted (Visa Rules).
VISA_CATEGORY_1: frozenset[str] = frozenset(
    {"04", "07", "12", "14", "15", "41", "43", "46", "57", "R0", "R1", "R3"}
)
# Before this instant Visa allowed 15 reattempts per 30 days; from it, 20.
VISA_2025_CHANGE = datetime(2025, 5, 25, tzinfo=UTC)

# What each Mastercard Merchant Advice Code means, as Stripe's advice (and so as a policy code)
# and in words. The waits are below, in MAC_WAITS.
MAC_MEANING: Mapping[str, tuple[str, str]] = MappingProxyType(
    {
        "01": ("confirm_card_data", "new account information available"),
        "02": ("try_again_later", "cannot approve at this time, try again later"),
        "03": ("do_not_try_again", "do not try again"),
        "04": ("try_again_later", "token requirements not fulfilled for this token type"),
        "21": ("do_not_try_again", "payment cancellation: the cardholder stopped the payments"),
        "24": ("try_again_later", "retry after 1 hour"),
        "25": ("try_again_later", "retry after 24 hours"),
        "26": ("try_again_later", "retry after 2 days"),
        "27": ("try_again_later", "retry after 4 days"),
        "28": ("try_again_later", "retry after 6 days"),
        "29": ("try_again_later", "retry after 8 days"),
        "30": ("try_again_later", "retry after 10 days"),
        "40": ("do_not_try_again", "consumer non-reloadable prepaid card"),
        "41": ("do_not_try_again", "consumer single-use virtual card number"),
    }
)
# Stripe's own advice codes (docs.stripe.com/declines#retrying-issuer-declines), the strictest
# first: when Stripe's advice and the network's MAC disagree, the stricter wins.
ADVICE_CODES: tuple[str, ...] = ("do_not_try_again", "confirm_card_data", "try_again_later")


def advice_of(advice_code: str | None, network_advice_code: str | None) -> str | None:
    """The advice that wins over a decline code: the stricter of Stripe's `advice_code` and
    what the network's MAC means as Stripe's advice (MAC_MEANING), or None."""
    mac = MAC_MEANING.get(network_code(network_advice_code) or "")
    found = {advice_code if advice_code in ADVICE_CODES else None, mac[0] if mac else None}
    return next((advice for advice in ADVICE_CODES if advice in found), None)


MAC_WAITS: Mapping[str, timedelta] = MappingProxyType(
    {
        "02": 72 * HOUR,
        "24": HOUR,
        "25": 24 * HOUR,
        "26": 2 * DAY,
        "27": 4 * DAY,
        "28": 6 * DAY,
        "29": 8 * DAY,
        "30": 10 * DAY,
    }
)
_WAIT_WORDS = {HOUR: "1 hour", 24 * HOUR: "24 hours", 72 * HOUR: "72 hours"}

# Stripe's decline codes that carry a Visa category 1 response (approximate: Stripe's names for
# the issuer's answers, docs.stripe.com/declines/codes), for the policy lint.
STRIPE_VISA_CATEGORY_1: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "pickup_card": ("04", "07"),
        "transaction_not_allowed": ("12", "57"),
        "not_permitted": ("12", "57"),
        "incorrect_number": ("14",),
        "invalid_number": ("14",),
        "invalid_account": ("14", "15", "46"),
        "lost_card": ("41",),
        "stolen_card": ("43",),
        "stop_payment_order": ("R0",),
        "revocation_of_authorization": ("R1",),
        "revocation_of_all_authorizations": ("R3",),
    }
)


def _codes(values: Iterable[str]) -> frozenset[str]:
    return frozenset(c for c in (network_code(v) for v in values) if c)


@dataclass(frozen=True, slots=True)
class NetworkRules:
    """Every number a setting (`[network]` in the README); the defaults are the networks'."""

    visa_reattempts_per_30d: int = 20
    visa_earlier_limits: tuple[tuple[datetime, int], ...] = ((VISA_2025_CHANGE, 15),)
    visa_category_1_codes: frozenset[str] = VISA_CATEGORY_1
    mc_declines_per_24h: int = 10
    mc_declines_per_30d: int = 35
    mac_waits: Mapping[str, timedelta] = field(default_factory=lambda: MAC_WAITS)
    mac_never_codes: frozenset[str] = frozenset({"03", "21"})
    mac_new_card_codes: frozenset[str] = frozenset({"01"})
    # How long a category 1 or MAC 03/21 decline stops every other job of the card (the job
    # that got it is stopped for good).
    hard_decline_block: timedelta = 30 * DAY
    # Amex, Discover, ...: no published rule; None turns the cap off.
    other_attempts_per_30d: int | None = 20
    # A card of unknown network keeps both Visa's and Mastercard's limits.
    unknown_network_strictest: bool = True

    def __post_init__(self) -> None:
        for name in ("visa_reattempts_per_30d", "mc_declines_per_24h", "mc_declines_per_30d"):
            _positive(getattr(self, name), name)
        if self.other_attempts_per_30d is not None:
            _positive(self.other_attempts_per_30d, "other_attempts_per_30d")
        for at, limit in self.visa_earlier_limits:
            _positive(limit, "visa_earlier_limits")
            if at.tzinfo is None:
                raise InvalidInput(
                    "times must be timezone-aware", field="network.visa_earlier_limits"
                )
        waits = {}
        for code, wait in self.mac_waits.items():
            if wait < timedelta(0):
                raise InvalidInput(
                    f"MAC {code}: a wait cannot be negative", field="network.mac_waits"
                )
            waits[network_code(code) or code] = wait
        object.__setattr__(self, "mac_waits", MappingProxyType(waits))
        for name in ("visa_category_1_codes", "mac_never_codes", "mac_new_card_codes"):
            object.__setattr__(self, name, _codes(getattr(self, name)))
        if self.hard_decline_block < timedelta(0):
            raise InvalidInput("cannot be negative", field="network.hard_decline_block")

    def visa_limit(self, at: datetime) -> int:
        """Visa's reattempt limit for an attempt at `at`. It only ever rises over time, so a
        postponement past a change point can only gain room."""
        earlier = [limit for until, limit in self.visa_earlier_limits if at < until]
        return min([self.visa_reattempts_per_30d, *earlier])

    @property
    def lookback(self) -> timedelta:
        """How far back the history passed to `check` must reach."""
        return max([WINDOW_30D, self.hard_decline_block, *self.mac_waits.values()])


def _positive(value: int, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInput(
            f"expected a whole number of at least 1, got {value!r}", field=f"network.{name}"
        )


# The `[network]` settings proposed for config.toml (name, default as written, what it sets).
SETTINGS: tuple[tuple[str, str, str], ...] = (
    (
        "visa_reattempts_per_30d",
        "20",
        "Visa: reattempts per card in 30 days (15 before 2025-05-25)",
    ),
    ("visa_category_1_codes", '"04,07,12,14,15,41,43,46,57,R0,R1,R3"', "Visa: never reattempted"),
    ("mc_declines_per_24h", "10", "Mastercard: declines per card in 24 hours"),
    ("mc_declines_per_30d", "35", "Mastercard: declines per card in 30 days"),
    ("mac_new_card_codes", '"01"', "Mastercard MACs retried only with new card data"),
    ("mac_never_codes", '"03,21"', "Mastercard MACs never retried (30 days on the card)"),
    *(
        (f"mac_{code}_wait", f'"{format_duration(wait)}"', f"Mastercard MAC {code}: the least wait")
        for code, wait in MAC_WAITS.items()
    ),
    ("hard_decline_block", '"30d"', "how long a never-retry decline stops the card's other jobs"),
    ("other_attempts_per_30d", "20", "other networks: attempts per card in 30 days (0: no cap)"),
    ("unknown_network_strictest", "true", "an unknown network keeps Visa's and Mastercard's"),
)
_SETTING_NAMES = frozenset(name for name, _, _ in SETTINGS)
_CODE = re.compile(r"^[0-9A-Z]{2}$")


def rules_from_settings(values: Mapping[str, object]) -> NetworkRules:
    """NetworkRules from `[network]` values (TOML values or environment strings); a bad one is
    a ConfigError naming `network.KEY`."""
    unknown = sorted(set(values) - _SETTING_NAMES)
    if unknown:
        raise ConfigError(
            f"unknown key {unknown[0]!r} (known: {', '.join(sorted(_SETTING_NAMES))})",
            field=f"network.{unknown[0]}",
        )
    rules = NetworkRules()
    changes: dict[str, object] = {}
    waits = dict(rules.mac_waits)
    for name, value in values.items():
        where = f"network.{name}"
        if name.startswith("mac_") and name.endswith("_wait"):
            waits[name[4:6]] = _setting_duration(value, where)
        elif name.endswith("_codes"):
            changes[name] = _setting_codes(value, where)
        elif name == "hard_decline_block":
            changes[name] = _setting_duration(value, where)
        elif name == "unknown_network_strictest":
            changes[name] = _setting_bool(value, where)
        else:
            number = _setting_int(value, where)
            if name == "other_attempts_per_30d":
                changes[name] = number or None
            elif number < 1:
                raise ConfigError("expected a whole number of at least 1", field=where)
            else:
                changes[name] = number
    return replace(rules, mac_waits=waits, **changes)  # type: ignore[arg-type]


def _setting_int(value: object, where: str) -> int:
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        return int(value.strip())
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise ConfigError(f"expected a whole number, got {value!r}", field=where)


def _setting_bool(value: object, where: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "false", "0", "no"):
        return text in ("true", "1", "yes")
    raise ConfigError(f"expected true or false, got {value!r}", field=where)


def _setting_duration(value: object, where: str) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ConfigError(f"expected a duration like 4d or 72h, got {value!r}", field=where)
    try:
        return parse_duration(value, field=where)
    except InvalidInput as exc:
        raise ConfigError(exc.message, field=where) from None


def _setting_codes(value: object, where: str) -> frozenset[str]:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple | set | frozenset):
        raise ConfigError(f'expected codes like "03,21", got {value!r}', field=where)
    codes = set()
    for item in items:
        code = network_code(str(item))
        if code is None:
            continue
        if not _CODE.match(code):
            raise ConfigError(f"{item!r} is not a two-character network code", field=where)
        codes.add(code)
    return frozenset(codes)


# -- verdicts --------------------------------------------------------------------------------


class VerdictKind(StrEnum):
    ALLOWED = "allowed"
    POSTPONED = "postponed"
    BLOCKED = "blocked"


@dataclass(frozen=True, slots=True)
class Verdict:
    """`at`: the time asked (allowed), the earliest time that keeps every rule (postponed), or
    for a block by the payment window the time it would have moved to (else None). `rule` names
    the rule that moved or stopped the attempt; `reason` says it in a sentence; `source` cites
    it; `moved_by` lists every rule that moved it, in order."""

    kind: VerdictKind
    at: datetime | None
    rule: str | None = None
    reason: str = "no card-network rule stands in the way"
    source: str = ""
    moved_by: tuple[str, ...] = ()
    after_window: bool = False

    @property
    def allowed(self) -> bool:
        return self.kind is VerdictKind.ALLOWED

    @property
    def postponed(self) -> bool:
        return self.kind is VerdictKind.POSTPONED

    @property
    def blocked(self) -> bool:
        return self.kind is VerdictKind.BLOCKED


@dataclass(frozen=True, slots=True)
class Hit:
    rule: str
    reason: str
    source: str
    until: datetime | None = None  # a move's earliest time; None for a block


@dataclass(frozen=True, slots=True)
class Cap:
    """A sliding-window cap: at most `limit(t)` counted entries in (t - window, t], the new
    attempt included. Entries after t are counted too (there should be none): never too few."""

    rule: str
    window: timedelta
    limits: tuple[tuple[datetime, int], ...]  # (until, limit) steps, rising; last until is max
    counts: tuple[datetime, ...]  # the counted entries' times, sorted
    words: str
    source: str

    def limit(self, at: datetime) -> int:
        return next(limit for until, limit in self.limits if at < until)

    def used(self, at: datetime) -> int:
        return len(self.counts) - bisect.bisect_right(self.counts, at - self.window)

    def earliest(self, at: datetime) -> datetime:
        """The earliest time >= at with room for one more."""
        t = at
        while True:
            used, limit = self.used(t), self.limit(t)
            if used < limit:
                return t
            # The (used - limit + 1)-th oldest counted entry must leave the window.
            first = bisect.bisect_right(self.counts, t - self.window)
            free = self.counts[first + used - limit] + self.window
            step = next((u for u, _ in self.limits if t < u < free), None)
            t = step if step is not None else free


_FOREVER = datetime.max.replace(tzinfo=UTC)


def _may_match(a: Network, b: Network) -> bool:
    return a is b or Network.UNKNOWN in (a, b)


def authorizations(
    history: Sequence[LedgerEntry], last_decline: LedgerEntry | None
) -> list[LedgerEntry]:
    """One entry per authorization: an ATTEMPT and its settled DECLINE/APPROVAL (same job and
    attempt number) count once, as the settled one."""
    rank = {EntryKind.ATTEMPT: 0, EntryKind.APPROVAL: 1, EntryKind.DECLINE: 2}
    keyed: dict[tuple[str, int], LedgerEntry] = {}
    loose: list[LedgerEntry] = []
    for entry in [*history, *([last_decline] if last_decline else [])]:
        if entry.job_id is None or entry.attempt_number is None:
            if entry not in loose:
                loose.append(entry)
            continue
        key = (entry.job_id, entry.attempt_number)
        if key not in keyed or rank[entry.kind] > rank[keyed[key].kind]:
            keyed[key] = entry
    return sorted([*keyed.values(), *loose], key=lambda e: e.at)


def caps(
    rules: NetworkRules,
    entries: Sequence[LedgerEntry],
    network: Network,
    initiated_by: Initiator,
) -> list[Cap]:
    strict = network is Network.UNKNOWN and rules.unknown_network_strictest
    near = [e for e in entries if _may_match(e.network, network)]
    caps = []
    if network is Network.VISA or strict:
        steps = sorted(rules.visa_earlier_limits)
        limits = tuple((u, rules.visa_limit(u - timedelta(microseconds=1))) for u, _ in steps)
        who = "merchant-initiated" if initiated_by is Initiator.MERCHANT else "customer-initiated"
        caps.append(
            Cap(
                "visa_reattempts_30d",
                WINDOW_30D,
                (*limits, (_FOREVER, rules.visa_reattempts_per_30d)),
                tuple(e.at for e in near if e.reattempt and e.initiated_by is initiated_by),
                f"Visa reattempts: at most {{limit}} {who} reattempts per card in 30 days",
                f"{VISA_SOURCE}: 15 per 30 days, 20 from 2025-05-25",
            )
        )
    if network is Network.MASTERCARD or strict:
        declines = tuple(e.at for e in near if e.possible_decline)
        for rule, window, limit, span in (
            ("mastercard_declines_24h", WINDOW_24H, rules.mc_declines_per_24h, "24 hours"),
            ("mastercard_declines_30d", WINDOW_30D, rules.mc_declines_per_30d, "30 days"),
        ):
            caps.append(
                Cap(
                    rule,
                    window,
                    ((_FOREVER, limit),),
                    declines,
                    f"Mastercard excessive attempts: at most {{limit}} declines per card in {span}",
                    TPE_SOURCE,
                )
            )
    if not (network in (Network.VISA, Network.MASTERCARD) or strict):
        if rules.other_attempts_per_30d is not None:
            caps.append(
                Cap(
                    "other_attempts_30d",
                    WINDOW_30D,
                    ((_FOREVER, rules.other_attempts_per_30d),),
                    tuple(e.at for e in near if e.reattempt),
                    f"{network.value} attempts: at most {{limit}} attempts per card in 30 days",
                    GENERIC_SOURCE,
                )
            )
    return caps


def wait_words(wait: timedelta) -> str:
    if wait in _WAIT_WORDS:
        return _WAIT_WORDS[wait]
    if wait >= 2 * DAY and wait % DAY == timedelta(0):
        return f"{wait // DAY} days"
    return format_duration(wait)


def mac_waits_in_force(
    rules: NetworkRules, entries: Sequence[LedgerEntry], network: Network, at: datetime
) -> Iterator[Hit]:
    for entry in entries:
        mac = entry.network_advice_code
        if (
            mac is not None
            and entry.kind is EntryKind.DECLINE
            and mac in rules.mac_waits
            and entry.network in (Network.MASTERCARD, Network.UNKNOWN)
            and _may_match(entry.network, network)
            and entry.at + rules.mac_waits[mac] > at
        ):
            wait = rules.mac_waits[mac]
            yield Hit(
                f"mastercard_mac_{mac}",
                f"Mastercard MAC {mac}: retry no sooner than {wait_words(wait)} after the decline",
                f"{MAC_SOURCE}: MAC {mac}, {MAC_MEANING.get(mac, ('', 'a wait'))[1]}",
                entry.at + wait,
            )


def _hard(rules: NetworkRules, entry: LedgerEntry, *, own: bool) -> Hit | None:
    """The block a decline imposes: category 1 and MAC 03/21 on the card; MAC 01 on its job."""
    if entry.kind is not EntryKind.DECLINE:
        return None
    where = "" if own else f" (declined on this card at {iso(entry.at)})"
    code, mac = entry.network_decline_code, entry.network_advice_code
    if entry.network in (Network.VISA, Network.UNKNOWN) and code in rules.visa_category_1_codes:
        return Hit(
            "visa_category_1",
            f"Visa category 1 decline (response code {code}): the issuer will never approve; "
            f"never reattempted on this card{where}",
            f"{VISA_SOURCE}: category 1, issuer will never approve",
        )
    if entry.network not in (Network.MASTERCARD, Network.UNKNOWN) or mac is None:
        return None
    meaning = MAC_MEANING.get(mac, ("", "do not try again"))[1]
    if mac in rules.mac_never_codes:
        return Hit(
            f"mastercard_mac_{mac}",
            f"Mastercard MAC {mac} ({meaning}): no retry on this card for 30 days, "
            f"so never by this job{where}",
            f"{MAC_SOURCE}: MAC {mac}; fees for any retry within 30 days",
        )
    if own and mac in rules.mac_new_card_codes:
        return Hit(
            f"mastercard_mac_{mac}",
            f"Mastercard MAC {mac} ({meaning}): retry only with new card data",
            f"{MAC_SOURCE}: MAC {mac}",
        )
    return None


def block_in_force(
    rules: NetworkRules,
    entries: Sequence[LedgerEntry],
    network: Network,
    at: datetime,
    last_decline: LedgerEntry | None,
) -> Hit | None:
    if last_decline is not None:
        hit = _hard(rules, last_decline, own=True)
        if hit is not None:
            return hit
    for entry in reversed(entries):
        if entry.at <= at - rules.hard_decline_block or not _may_match(entry.network, network):
            continue
        hit = _hard(rules, entry, own=False)
        if hit is not None:
            return hit
    return None


def _moves(
    rules: NetworkRules,
    entries: Sequence[LedgerEntry],
    network: Network,
    initiated_by: Initiator,
    at: datetime,
) -> Iterator[Hit]:
    yield from mac_waits_in_force(rules, entries, network, at)
    for cap in caps(rules, entries, network, initiated_by):
        earliest = cap.earliest(at)
        if earliest > at:
            words = cap.words.format(limit=cap.limit(at))
            yield Hit(cap.rule, f"{words} ({cap.used(at)} already)", cap.source, earliest)


def check(
    rules: NetworkRules,
    history: Sequence[LedgerEntry],
    *,
    network: Network | str | None,
    at: datetime,
    initiated_by: Initiator = Initiator.MERCHANT,
    last_decline: LedgerEntry | None = None,
    window_end: datetime | None = None,
) -> Verdict:
    """May the card's next authorization be sent at `at`?

    `history`: the card's ledger, at least the entries newer than `at - rules.lookback`.
    `last_decline`: the decline this attempt would retry (the job's own; it may be in history).
    Allowed; postponed to the earliest time that keeps every rule (each cap's sliding window
    and each MAC's wait, moved until none moves it again); or blocked: a category 1 or MAC
    01/03/21 decline, or a postponement past `window_end`.
    """
    if at.tzinfo is None:
        raise InvalidInput("must be timezone-aware", field="at")
    net = Network.of(network)
    entries = authorizations(history, last_decline)
    t, steps = at, list[Hit]()
    while True:
        block = block_in_force(rules, entries, net, t, last_decline)
        if block is not None:
            return Verdict(
                VerdictKind.BLOCKED,
                None,
                block.rule,
                block.reason,
                block.source,
                tuple(m.rule for m in steps),
            )
        latest: Hit | None = None
        for move in _moves(rules, entries, net, initiated_by, t):
            assert move.until is not None
            if latest is None or move.until > (latest.until or t):
                latest = move
        if latest is None or latest.until is None:
            break
        steps.append(latest)
        t = latest.until
    if not steps:
        return Verdict(VerdictKind.ALLOWED, at)
    binding, moved_by = steps[-1], tuple(m.rule for m in steps)
    if window_end is not None and t > window_end:
        return Verdict(
            VerdictKind.BLOCKED,
            t,
            binding.rule,
            f"{binding.reason}; the next try {iso(t)} would fall after the payment window, "
            f"which ends {iso(window_end)}",
            binding.source,
            moved_by,
            after_window=True,
        )
    return Verdict(
        VerdictKind.POSTPONED,
        t,
        binding.rule,
        f"{binding.reason}; next try {iso(t)}",
        binding.source,
        moved_by,
    )
