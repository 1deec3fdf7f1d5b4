"""The card-network rules: every rule at its boundary, the move-or-block decision, exactness
against a brute-force oracle, and a simulated year of retries across many jobs per card."""

from __future__ import annotations

import bisect
import heapq
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from payretry.domain.card_ledger import (
    CardKey,
    EntryKind,
    Initiator,
    KeyKind,
    LedgerEntry,
    Network,
    card_key,
)
from payretry.domain.card_summary import summarize
from payretry.domain.network_rules import (
    SETTINGS,
    NetworkRules,
    Verdict,
    check,
    rules_from_settings,
)
from payretry.errors import ConfigError, InvalidInput

S, M, H, D = timedelta(seconds=1), timedelta(minutes=1), timedelta(hours=1), timedelta(days=1)
US = timedelta(microseconds=1)
T = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
RULES = NetworkRules()
VISA_CARD = CardKey(KeyKind.CARD, "visa:fp_v")
MC_CARD = CardKey(KeyKind.CARD, "mastercard:fp_m")
MIT, CIT = Initiator.MERCHANT, Initiator.CUSTOMER
MAC_WAITS = {"02": 72 * H, "24": H, "25": 24 * H, "26": 2 * D, "27": 4 * D, "28": 6 * D}
MAC_WAITS |= {"29": 8 * D, "30": 10 * D}
CATEGORY_1 = ["04", "07", "12", "14", "15", "41", "43", "46", "57", "R0", "R1", "R3"]


def entry(
    at: datetime,
    network: Network = Network.MASTERCARD,
    kind: EntryKind = EntryKind.DECLINE,
    *,
    mac: str | None = None,
    code: str | None = None,
    who: Initiator = MIT,
    job: str | None = None,
    number: int | None = 1,
) -> LedgerEntry:
    card = VISA_CARD if network is Network.VISA else MC_CARD
    return LedgerEntry(at, card, network, kind, who, mac, code, job or f"j{at.isoformat()}", number)


def series(
    n: int, start: datetime, step: timedelta, network: Network, **kw: object
) -> list[LedgerEntry]:
    return [
        entry(start + i * step, network, job=f"s{i}", **kw)  # type: ignore[arg-type]
        for i in range(n)
    ]


def visa(history: Sequence[LedgerEntry], at: datetime, who: Initiator = MIT) -> Verdict:
    return check(RULES, history, network=Network.VISA, at=at, initiated_by=who)


def mc(
    history: Sequence[LedgerEntry], at: datetime, last: LedgerEntry | None = None, **kw: object
) -> Verdict:
    return check(RULES, history, network="mastercard", at=at, last_decline=last, **kw)  # type: ignore[arg-type]


# -- Visa ------------------------------------------------------------------------------------


def test_the_20th_visa_reattempt_in_30_days_is_allowed_and_the_21st_waits_for_the_oldest() -> None:
    nineteen = series(19, T - 29 * D, H, Network.VISA, kind=EntryKind.APPROVAL)
    assert visa(nineteen, T).allowed
    twenty = series(20, T - 29 * D, H, Network.VISA)
    verdict = visa(twenty, T)
    assert verdict.postponed and verdict.rule == "visa_reattempts_30d"
    assert verdict.at == T - 29 * D + 30 * D  # the oldest leaves the window (t - 30d, t]
    assert verdict.reason == (
        "Visa reattempts: at most 20 merchant-initiated reattempts per card in 30 days "
        "(20 already); next try 2026-12-02T10:00:00Z"
    )
    assert verdict.source.startswith("Visa Rules")
    assert visa(twenty, T + D).allowed  # exactly 30 days after the oldest: outside the window


def test_before_2025_05_25_visa_allowed_15_and_a_postponement_gains_room_at_the_change() -> None:
    april = datetime(2025, 4, 20, tzinfo=UTC)
    fourteen = series(14, april, H, Network.VISA)
    assert visa(fourteen, datetime(2025, 5, 1, tzinfo=UTC)).allowed
    fifteen = series(15, april, H, Network.VISA)
    early = visa(fifteen, datetime(2025, 5, 1, tzinfo=UTC))
    assert early.postponed and early.at == datetime(2025, 5, 20, tzinfo=UTC)  # oldest + 30 days
    late = series(15, datetime(2025, 5, 1, tzinfo=UTC), H, Network.VISA)
    crossing = visa(late, datetime(2025, 5, 10, tzinfo=UTC))
    assert crossing.postponed and crossing.at == datetime(2025, 5, 25, tzinfo=UTC)  # 20 from then


def test_customer_and_merchant_initiated_reattempts_are_counted_apart() -> None:
    twenty = series(20, T - 2 * D, H, Network.VISA, who=MIT)
    assert visa(twenty, T, MIT).postponed
    assert visa(twenty, T, CIT).allowed
    assert visa(series(20, T - 2 * D, H, Network.VISA, who=CIT), T, CIT).postponed
    cit = visa(series(20, T - 2 * D, H, Network.VISA, who=CIT), T, CIT)
    assert "customer-initiated" in cit.reason


def test_the_decline_that_queued_a_job_is_not_a_reattempt_but_an_unknown_number_is() -> None:
    queued = series(20, T - D, M, Network.VISA, number=0)
    assert visa(queued, T).allowed
    unknown = series(20, T - D, M, Network.VISA, number=None)
    assert visa(unknown, T).postponed


@pytest.mark.parametrize("code", CATEGORY_1)
def test_a_visa_category_1_decline_blocks_its_job_and_the_card(code: str) -> None:
    own = entry(T - 40 * D, Network.VISA, code=code.lower(), job="a")
    verdict = check(RULES, [], network="visa", at=T, last_decline=own)
    assert verdict.blocked and verdict.rule == "visa_category_1" and verdict.at is None
    assert verdict.reason.startswith(f"Visa category 1 decline (response code {code})")
    other = entry(T - 29 * D, Network.VISA, code=code, job="b")
    assert visa([other], T).blocked
    assert visa([entry(T - 30 * D, Network.VISA, code=code, job="b")], T).allowed


def test_a_category_2_to_4_decline_is_retried() -> None:
    own = entry(T - H, Network.VISA, code="51")
    assert check(RULES, [own], network="visa", at=T, last_decline=own).allowed


# -- Mastercard ------------------------------------------------------------------------------


def test_the_10th_decline_in_24_hours_is_allowed_and_the_11th_waits() -> None:
    nine = series(9, T - 23 * H, H, Network.MASTERCARD)
    assert mc(nine, T).allowed
    ten = series(10, T - 23 * H, H, Network.MASTERCARD)
    verdict = mc(ten, T)
    assert verdict.postponed and verdict.rule == "mastercard_declines_24h"
    assert verdict.at == T + H  # the first of the ten leaves the window
    assert verdict.source.startswith("Mastercard Transaction Processing Excellence")


def test_approvals_are_not_declines_but_unsettled_attempts_may_be() -> None:
    approvals = series(10, T - 5 * H, M, Network.MASTERCARD, kind=EntryKind.APPROVAL)
    assert mc(approvals, T).allowed
    pending = series(10, T - 5 * H, M, Network.MASTERCARD, kind=EntryKind.ATTEMPT)
    assert mc(pending, T).postponed


def test_an_attempt_and_its_settled_outcome_count_once() -> None:
    sent = series(10, T - 5 * H, M, Network.MASTERCARD, kind=EntryKind.ATTEMPT)
    settled = series(10, T - 5 * H, M, Network.MASTERCARD, kind=EntryKind.APPROVAL)
    assert mc(sent + settled, T).allowed


def test_the_35th_decline_in_30_days_is_allowed_and_the_36th_waits() -> None:
    spaced = 20 * H  # never more than 2 in 24 hours
    assert mc(series(34, T - 34 * spaced, spaced, Network.MASTERCARD), T).allowed
    over = series(35, T - 29 * D, spaced, Network.MASTERCARD)
    verdict = mc(over, T)
    assert verdict.postponed and verdict.rule == "mastercard_declines_30d"
    assert verdict.at == T - 29 * D + 30 * D


def test_59_minutes_after_mac_24_waits_and_60_minutes_is_allowed() -> None:
    decline = entry(T, mac="24")
    early = mc([decline], T + 59 * M, decline)
    assert early.postponed and early.at == T + H and early.rule == "mastercard_mac_24"
    assert mc([decline], T + 60 * M, decline).allowed


@pytest.mark.parametrize("mac", sorted(MAC_WAITS))
def test_each_mac_wait_is_kept_to_the_microsecond(mac: str) -> None:
    decline = entry(T, mac=mac)
    early = mc([decline], T + MAC_WAITS[mac] - US, decline)
    assert early.postponed and early.at == T + MAC_WAITS[mac]
    assert early.rule == f"mastercard_mac_{mac}"
    assert mc([decline], T + MAC_WAITS[mac], decline).allowed


def test_the_sentence_names_the_mac_its_wait_and_the_next_try() -> None:
    decline = entry(T, mac="27")
    verdict = mc([decline], T + H, decline)
    assert verdict.reason == (
        "Mastercard MAC 27: retry no sooner than 4 days after the decline; "
        "next try 2026-12-05T10:00:00Z"
    )
    assert "Merchant Advice Codes" in verdict.source


def test_mac_02_waits_72_hours() -> None:
    decline = entry(T, mac="02")
    assert mc([decline], T + 71 * H, decline).at == T + 72 * H
    assert mc([decline], T + 72 * H, decline).allowed


@pytest.mark.parametrize("mac", ["03", "21"])
def test_mac_03_and_21_block_the_job_and_the_card_for_30_days(mac: str) -> None:
    own = entry(T - 45 * D, mac=mac, job="a")
    verdict = mc([], T, own)
    assert verdict.blocked and verdict.rule == f"mastercard_mac_{mac}"
    other = entry(T - 29 * D, mac=mac, job="b")
    card_wide = mc([other], T)
    assert card_wide.blocked and "declined on this card at" in card_wide.reason
    assert mc([entry(T - 30 * D, mac=mac, job="b")], T).allowed


def test_mac_01_blocks_its_job_until_new_card_data_but_not_the_cards_other_jobs() -> None:
    own = entry(T - D, mac="01", job="a")
    verdict = mc([own], T, own)
    assert verdict.blocked and verdict.rule == "mastercard_mac_01"
    assert "new card data" in verdict.reason
    assert mc([own], T).allowed  # another job, with new card data, is not held by it


def test_a_mac_wait_holds_every_job_of_the_card() -> None:
    other_job = entry(T, mac="26", job="other")
    assert mc([other_job], T + D).at == T + 2 * D


def test_macs_are_mastercards_and_keys_spanning_networks_keep_them_apart() -> None:
    on_visa = entry(T, Network.VISA, mac="30")
    assert visa([on_visa], T + H).allowed
    on_mastercard = entry(T, Network.MASTERCARD, mac="30")
    assert visa([on_mastercard], T + H).allowed
    on_unknown = entry(T, Network.UNKNOWN, mac="30")
    assert mc([on_unknown], T + H).postponed


# -- other networks and unknown ones ---------------------------------------------------------


def test_an_unknown_network_keeps_both_visa_and_mastercard_limits() -> None:
    ten = series(10, T - 5 * H, M, Network.UNKNOWN)
    verdict = check(RULES, ten, network=None, at=T)
    assert verdict.postponed and verdict.rule == "mastercard_declines_24h"
    twenty = series(20, T - 20 * D, D, Network.UNKNOWN, kind=EntryKind.APPROVAL)
    assert check(RULES, twenty, network="unknown", at=T).rule == "visa_reattempts_30d"
    lenient = NetworkRules(unknown_network_strictest=False)
    assert check(lenient, ten, network=None, at=T).allowed  # only the generic cap: 20


def test_other_networks_get_the_generic_cap_or_none() -> None:
    twenty = series(20, T - 20 * D, D, Network.AMEX, kind=EntryKind.APPROVAL)
    verdict = check(RULES, twenty, network="amex", at=T)
    assert verdict.postponed and verdict.rule == "other_attempts_30d"
    assert verdict.source.startswith("payretry's cap")
    off = NetworkRules(other_attempts_per_30d=None)
    assert check(off, twenty, network="amex", at=T).allowed


# -- the decision: move or block -------------------------------------------------------------


def test_a_postponement_inside_the_window_moves_and_past_it_blocks() -> None:
    decline = entry(T, mac="27")
    inside = mc([decline], T + H, decline, window_end=T + 4 * D)
    assert inside.postponed and inside.at == T + 4 * D  # the window's last instant still counts
    outside = mc([decline], T + H, decline, window_end=T + 4 * D - S)
    assert outside.blocked and outside.after_window and outside.rule == "mastercard_mac_27"
    assert outside.at == T + 4 * D
    assert outside.reason.endswith(
        "the next try 2026-12-05T10:00:00Z would fall after the payment window, "
        "which ends 2026-12-05T09:59:59Z"
    )


def test_the_latest_rule_binds_and_every_rule_that_moved_it_is_named() -> None:
    burst = series(10, T - 23 * H, M, Network.MASTERCARD)  # full until T + 1h
    decline = entry(T - 22 * H, mac="25", job="own")  # 24 hours from its decline: T + 2h
    verdict = mc([*burst, decline], T, decline)
    assert verdict.at == T + 2 * H and verdict.rule == "mastercard_mac_25"
    month = series(35, T - 29 * D, 20 * H, Network.MASTERCARD)  # 36 with its own decline:
    verdict = mc([*month, decline], T, decline)  # the 2nd oldest must leave the window too
    assert verdict.at == T - 29 * D + 20 * H + 30 * D and verdict.rule == "mastercard_declines_30d"
    assert verdict.moved_by == ("mastercard_declines_30d",)


def test_times_must_be_timezone_aware() -> None:
    with pytest.raises(InvalidInput, match="at: must be timezone-aware"):
        check(RULES, [], network="visa", at=datetime(2026, 1, 1))


# -- keys, networks, settings ----------------------------------------------------------------


def test_the_key_is_the_card_then_the_payment_method_then_the_customer() -> None:
    card = card_key(network="Visa", fingerprint="fp_1", payment_method="pm_1", customer="cus_1")
    assert card == CardKey(KeyKind.CARD, "visa:fp_1") and str(card) == "card:visa:fp_1"
    assert card_key(network=None, fingerprint="fp_1", payment_method="pm_1") == CardKey(
        KeyKind.PAYMENT_METHOD, "pm_1"
    )
    assert card_key(customer="cus_1") == CardKey(KeyKind.CUSTOMER, "cus_1")
    assert card_key() is None
    for text in ("card:visa:fp_1", "payment_method:pm_1", "customer:cus_1"):
        assert str(CardKey.parse(text)) == text
    assert CardKey.parse("pm_9") == CardKey(KeyKind.PAYMENT_METHOD, "pm_9")
    assert CardKey.parse("cus_9") == CardKey(KeyKind.CUSTOMER, "cus_9")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("4242 4242 4242 4242", "looks like a card number"),
        ("card:visa:4242424242424242", "looks like a card number"),
        ("card:visa", "card:NETWORK:FINGERPRINT"),
        ("card:plastic:fp", "not a card network"),
        ("wallet:x", "not a card key kind"),
        ("hello", "not a card key"),
        ("customer:a\x01b", "control characters"),
        ("customer:ann@example.com", "e-mail"),
    ],
)
def test_a_bad_key_is_refused_naming_it(text: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message) as raised:
        CardKey.parse(text)
    assert raised.value.field == "KEY"


def test_networks_by_any_brand_name_and_strictly_by_an_operator() -> None:
    assert Network.of("MasterCard") is Network.MASTERCARD
    assert Network.of("American Express") is Network.AMEX
    assert Network.of("cartes_bancaires") is Network.UNKNOWN and Network.of(None) is Network.UNKNOWN
    assert Network.parse("mc") is Network.MASTERCARD
    with pytest.raises(InvalidInput, match="card_network: 'plastic' is not a card network"):
        Network.parse("plastic")


def test_ledger_codes_are_normalised_and_times_aware() -> None:
    e = entry(T, mac=" 3", code="r0")
    assert (e.network_advice_code, e.network_decline_code) == ("03", "R0")
    with pytest.raises(InvalidInput, match="at: must be timezone-aware"):
        LedgerEntry(datetime(2026, 1, 1), MC_CARD, Network.MASTERCARD, EntryKind.DECLINE)


def test_every_number_is_a_setting() -> None:
    rules = rules_from_settings(
        {
            "visa_reattempts_per_30d": "25",
            "mc_declines_per_24h": 8,
            "mac_27_wait": "5d",
            "mac_never_codes": "03, 21, 40",
            "other_attempts_per_30d": 0,
            "unknown_network_strictest": "false",
            "hard_decline_block": "45d",
        }
    )
    assert rules.visa_reattempts_per_30d == 25 and rules.mc_declines_per_24h == 8
    assert rules.mac_waits["27"] == 5 * D and rules.mac_waits["24"] == H
    assert rules.mac_never_codes == {"03", "21", "40"}
    assert rules.other_attempts_per_30d is None and not rules.unknown_network_strictest
    assert rules.hard_decline_block == 45 * D
    assert rules_from_settings({}) == RULES
    names = {name for name, _, _ in SETTINGS}
    assert {"visa_reattempts_per_30d", "mc_declines_per_30d", "mac_30_wait"} <= names


@pytest.mark.parametrize(
    ("values", "field", "message"),
    [
        ({"visa_limit": 3}, "network.visa_limit", "unknown key"),
        ({"visa_reattempts_per_30d": 0}, "network.visa_reattempts_per_30d", "at least 1"),
        ({"mc_declines_per_24h": "ten"}, "network.mc_declines_per_24h", "whole number"),
        ({"mc_declines_per_30d": True}, "network.mc_declines_per_30d", "whole number"),
        ({"mac_27_wait": "soon"}, "network.mac_27_wait", "not a duration"),
        ({"mac_never_codes": "03,XYZ"}, "network.mac_never_codes", "two-character"),
        ({"mac_never_codes": 3}, "network.mac_never_codes", "expected codes"),
        ({"unknown_network_strictest": "maybe"}, "network.unknown_network_strictest", "true"),
    ],
)
def test_a_bad_setting_is_refused_naming_it(
    values: dict[str, object], field: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as raised:
        rules_from_settings(values)
    assert raised.value.field == field


def test_the_lookback_covers_every_window_and_wait() -> None:
    assert RULES.lookback == 30 * D
    assert NetworkRules(mac_waits={"30": 40 * D}).lookback == 40 * D


# -- the card's page -------------------------------------------------------------------------


def test_the_summary_counts_as_the_check_does() -> None:
    history = [
        *series(9, T - 20 * H, H, Network.MASTERCARD),
        entry(T - 2 * H, kind=EntryKind.APPROVAL, job="ok"),
        entry(T - H, mac="26", job="late"),
    ]
    summary = summarize(RULES, history, card=MC_CARD, network="mastercard", now=T)
    assert (summary.attempts_24h, summary.declines_24h) == (11, 10)
    day = next(x for x in summary.limits if x.rule == "mastercard_declines_24h")
    assert (day.limit, day.used, day.left) == (10, 10, 0)
    assert day.frees_at == T - 20 * H + D
    [hold] = summary.holds
    assert hold.rule == "mastercard_mac_26" and hold.until == T - H + 2 * D
    assert summary.next_try.postponed and summary.next_try.at == T - H + 2 * D
    assert summary.recent[0].job_id == "late"
    document = summary.as_dict()
    assert document["card"] == "card:mastercard:fp_m"
    assert document["next_try"] == {
        "verdict": "postponed",
        "at": "2026-12-03T09:00:00Z",
        "rule": "mastercard_mac_26",
        "reason": summary.next_try.reason,
        "source": summary.next_try.source,
    }


def test_the_visa_summary_shows_each_initiator_and_a_block() -> None:
    history = [entry(T - D, Network.VISA, code="R1", who=CIT)]
    summary = summarize(RULES, history, card=VISA_CARD, network="visa", now=T)
    assert [(x.initiated_by, x.used, x.left) for x in summary.limits] == [
        (MIT, 0, 20),
        (CIT, 1, 19),
    ]
    assert [(h.rule, h.until) for h in summary.holds] == [("visa_category_1", None)]
    assert summary.next_try.blocked


# -- an independent oracle: the rules read straight from their definitions -------------------


def visa_limit(at: datetime) -> int:
    return 15 if at < datetime(2025, 5, 25, tzinfo=UTC) else 20


def same_card(a: Network, b: Network) -> bool:
    return a == b or Network.UNKNOWN in (a, b)


def oracle(
    entries: Sequence[LedgerEntry],
    *,
    network: Network,
    at: datetime,
    who: Initiator,
    last: LedgerEntry | None,
) -> set[str]:
    """Every rule an authorization at `at` would break, by brute force (entries all <= at, one
    per authorization)."""
    seen = [*entries, *([last] if last is not None and last not in entries else [])]
    broken: set[str] = set()
    visa_like, mc_like = (Network.VISA, Network.UNKNOWN), (Network.MASTERCARD, Network.UNKNOWN)

    def within(e: LedgerEntry, window: timedelta) -> bool:
        return at - window < e.at <= at

    mine = [e for e in seen if same_card(e.network, network)]
    if network in visa_like:
        count = sum(
            1 for e in mine if within(e, 30 * D) and e.attempt_number != 0 and e.initiated_by == who
        )
        if count + 1 > visa_limit(at):
            broken.add("visa_reattempts_30d")
    if network in mc_like:
        for rule, window, limit in (
            ("mastercard_declines_24h", D, 10),
            ("mastercard_declines_30d", 30 * D, 35),
        ):
            count = sum(1 for e in mine if within(e, window) and e.kind != EntryKind.APPROVAL)
            if count + 1 > limit:
                broken.add(rule)
    if network not in visa_like and network not in mc_like:
        if sum(1 for e in mine if within(e, 30 * D) and e.attempt_number != 0) + 1 > 20:
            broken.add("other_attempts_30d")
    for e in mine:
        if e.kind != EntryKind.DECLINE:
            continue
        if e.network in mc_like and e.network_advice_code in MAC_WAITS:
            if at < e.at + MAC_WAITS[e.network_advice_code]:
                broken.add(f"mastercard_mac_{e.network_advice_code}")
        if within(e, 30 * D):
            if e.network in visa_like and e.network_decline_code in CATEGORY_1:
                broken.add("visa_category_1")
            if e.network in mc_like and e.network_advice_code in ("03", "21"):
                broken.add(f"mastercard_mac_{e.network_advice_code}")
    if last is not None and last.kind == EntryKind.DECLINE:
        if last.network in visa_like and last.network_decline_code in CATEGORY_1:
            broken.add("visa_category_1")
        if last.network in mc_like and last.network_advice_code in ("01", "03", "21"):
            broken.add(f"mastercard_mac_{last.network_advice_code}")
    return broken


BLOCKING = {"visa_category_1", "mastercard_mac_01", "mastercard_mac_03", "mastercard_mac_21"}
NETWORKS = [Network.VISA, Network.MASTERCARD, Network.UNKNOWN, Network.AMEX]
MACS = [None, None, None, "01", "02", "03", "04", "21", *MAC_WAITS]
CODES = [None, "51", "05", "61", "91", "54", *CATEGORY_1[:3]]


@st.composite
def histories(draw: st.DrawFn) -> tuple[list[LedgerEntry], Network, datetime, Initiator, int]:
    base = draw(st.sampled_from([datetime(2025, 5, 10, tzinfo=UTC), T]))
    card_network = draw(st.sampled_from(NETWORKS))
    n = draw(st.integers(0, 45))
    burst = draw(st.sampled_from([M, H, 6 * H, D]))
    entries = []
    for i in range(n):
        entries.append(
            LedgerEntry(
                base - draw(st.integers(0, 40 * 24 * 60)) * burst / (24 * 60),
                MC_CARD,
                draw(st.sampled_from([card_network, card_network, Network.UNKNOWN])),
                draw(st.sampled_from(list(EntryKind))),
                draw(st.sampled_from([MIT, MIT, CIT])),
                draw(st.sampled_from(MACS)),
                draw(st.sampled_from(CODES)),
                f"job{i}",
                draw(st.sampled_from([0, 1, 2, None])),
            )
        )
    at = base + draw(st.integers(0, 12 * 24 * 60)) * M
    return (
        entries,
        card_network,
        at,
        draw(st.sampled_from([MIT, CIT])),
        draw(st.integers(-1, n - 1)),
    )


@settings(max_examples=300, deadline=None)
@given(histories())
def test_every_verdict_is_exact_by_the_oracle(
    case: tuple[list[LedgerEntry], Network, datetime, Initiator, int],
) -> None:
    """Allowed: nothing broken. Postponed: nothing broken at the new time, and the named rule
    broken at the time asked and one microsecond before the new time (the earliest). Blocked:
    a block the oracle sees, or a move past the window."""
    entries, network, at, who, last_index = case
    last = entries[last_index] if last_index >= 0 else None
    window_end = at + 9 * D
    verdict = check(
        RULES, entries, network=network, at=at, initiated_by=who, last_decline=last,
        window_end=window_end,
    )  # fmt: skip

    def broken(t: datetime) -> set[str]:
        return oracle(entries, network=network, at=t, who=who, last=last)

    if verdict.allowed:
        assert broken(at) == set() and verdict.at == at
    elif verdict.postponed:
        assert verdict.at is not None and at < verdict.at <= window_end
        assert broken(verdict.at) == set()
        assert verdict.rule in broken(at) and verdict.rule in broken(verdict.at - US)
    else:
        assert verdict.rule is not None
        if verdict.after_window:
            assert verdict.at is not None and verdict.at > window_end
            assert verdict.rule in broken(at) and verdict.rule in broken(verdict.at - US)
            assert broken(verdict.at) == set()
        else:
            assert verdict.rule in broken(at) & BLOCKING


# -- a simulated year: many cards, thousands of jobs, a scheduler that obeys the check -------

YEAR = datetime(2025, 1, 1, tzinfo=UTC)  # across Visa's change of 2025-05-25
SCHEDULES = [(M, 5 * M, 30 * M), (H, 6 * H, 24 * H), (24 * H, 48 * H), (5 * M,), (2 * H,)]


@dataclass
class Job:
    id: str
    card: int
    who: Initiator
    created: datetime
    window_end: datetime
    delays: tuple[timedelta, ...]
    max_attempts: int
    attempts: int = 0
    last: LedgerEntry | None = None
    state: str = "scheduled"
    rule: str | None = None


@dataclass
class Card:
    key: CardKey
    network: Network
    ledger: list[LedgerEntry] = field(default_factory=list)
    times: list[datetime] = field(default_factory=list)

    def add(self, e: LedgerEntry) -> None:
        self.ledger.append(e)
        self.times.append(e.at)

    def since(self, at: datetime) -> list[LedgerEntry]:
        return self.ledger[bisect.bisect_right(self.times, at) :]


def decline_codes(rng: random.Random, network: Network) -> tuple[str | None, str | None]:
    if network is Network.UNKNOWN:
        network = rng.choice([Network.VISA, Network.MASTERCARD])
    if network is Network.MASTERCARD:
        mac = rng.choices([None, "01", "03", "21", *MAC_WAITS], [120, 1, 1, 1] + [4] * 8)
        return mac[0], rng.choice(["51", "05", "91"])
    if network is Network.VISA:
        return None, rng.choices([*CATEGORY_1, "51", "05", "61", "91", "54"], [1] * 12 + [90] * 5)[
            0
        ]
    return None, rng.choice(["05", "51"])


Decision = tuple[Job, datetime, Verdict, list[LedgerEntry], LedgerEntry | None]


def simulate(
    seed: int, n_cards: int, n_jobs: int, approve: float
) -> tuple[list[Card], list[Job], list[Decision]]:
    rng = random.Random(seed)
    cards = []
    for i in range(n_cards):
        network = rng.choices(NETWORKS, [45, 35, 10, 10])[0]
        cards.append(Card(CardKey(KeyKind.CARD, f"{network}:fp{i}"), network))
    jobs: list[Job] = []
    events: list[tuple[datetime, int, str]] = []
    hot = max(1, n_cards // 40)  # a few cards with many jobs, some in bursts on a few days
    burst_days = [rng.sample(range(360), 6) for _ in range(hot)]
    for j in range(n_jobs):
        index = rng.randrange(hot) if rng.random() < 0.35 else rng.randrange(n_cards)
        if index < hot and rng.random() < 0.6:
            created = YEAR + rng.choice(burst_days[index]) * D + rng.randrange(90) * M
        else:
            created = YEAR + rng.randrange(360) * D + rng.randrange(24 * 60) * M
        job = Job(
            f"job{j}",
            index,
            CIT if rng.random() < 0.1 else MIT,
            created,
            created + rng.randrange(2, 30) * D,
            rng.choice(SCHEDULES),
            rng.randrange(1, 7),
        )
        jobs.append(job)
        heapq.heappush(events, (created, j, "queue"))
    decisions: list[Decision] = []
    while events:
        t, j, what = heapq.heappop(events)
        job, card = jobs[j], cards[jobs[j].card]
        if what == "queue":  # the decline that queued the job
            mac, code = decline_codes(rng, card.network)
            job.last = LedgerEntry(
                t, card.key, card.network, EntryKind.DECLINE, job.who, mac, code, job.id, 0
            )
            card.add(job.last)
            heapq.heappush(events, (t + job.delays[0], j, "try"))
            continue
        history = card.since(t - RULES.lookback)
        verdict = check(
            RULES, history, network=card.network, at=t, initiated_by=job.who,
            last_decline=job.last, window_end=job.window_end,
        )  # fmt: skip
        if not verdict.allowed:
            decisions.append((job, t, verdict, history, job.last))
        if verdict.blocked:
            job.state, job.rule = "blocked", verdict.rule
            continue
        if verdict.postponed:
            assert verdict.at is not None
            heapq.heappush(events, (verdict.at, j, "try"))
            continue
        job.attempts += 1
        if rng.random() < approve:
            card.add(LedgerEntry(t, card.key, card.network, EntryKind.APPROVAL, job.who,
                                 job_id=job.id, attempt_number=job.attempts))  # fmt: skip
            job.state = "succeeded"
            continue
        mac, code = decline_codes(rng, card.network)
        job.last = LedgerEntry(
            t, card.key, card.network, EntryKind.DECLINE, job.who, mac, code, job.id, job.attempts
        )
        card.add(job.last)
        if job.attempts >= job.max_attempts:
            job.state = "exhausted"
            continue
        nxt = t + job.delays[min(job.attempts, len(job.delays) - 1)]
        if nxt > job.window_end:
            job.state = "abandoned"
            continue
        heapq.heappush(events, (nxt, j, "try"))
    return cards, jobs, decisions


KNOWN_RULES = {
    "visa_category_1",
    "visa_reattempts_30d",
    "mastercard_declines_24h",
    "mastercard_declines_30d",
    "other_attempts_30d",
    *(f"mastercard_mac_{m}" for m in ("01", "03", "21", *MAC_WAITS)),
}


@settings(max_examples=3, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), approve=st.floats(0.05, 0.35))
def test_a_simulated_year_breaks_no_rule_and_names_every_rule_that_held_a_job(
    seed: int, approve: float
) -> None:
    cards, jobs, decisions = simulate(seed, n_cards=250, n_jobs=2500, approve=approve)
    attempts = 0
    last_of: dict[str, LedgerEntry | None] = {}
    for card in cards:
        for i, e in enumerate(card.ledger):
            if e.attempt_number == 0 or e.job_id is None:
                last_of[e.job_id or ""] = e
                continue
            attempts += 1
            prior = [p for p in card.ledger[:i] if p.at > e.at - 31 * D]
            job = jobs[int(e.job_id[3:])]
            broken = oracle(
                prior, network=card.network, at=e.at, who=job.who, last=last_of[e.job_id]
            )
            assert broken == set(), (card.key, e, broken)
            assert e.at <= job.window_end
            last_of[e.job_id] = e if e.kind is EntryKind.DECLINE else last_of[e.job_id]
    assert attempts > 3000
    held = {verdict.rule for _, _, verdict, _, _ in decisions}
    assert held <= KNOWN_RULES and len(held) >= 6, held
    for job, t, verdict, history, last in decisions:
        assert verdict.rule and verdict.reason and verdict.source
        network = cards[job.card].network
        assert verdict.rule in oracle(history, network=network, at=t, who=job.who, last=last)
    blocked = [job for job in jobs if job.state == "blocked"]
    assert blocked and all(job.rule in KNOWN_RULES for job in blocked)
