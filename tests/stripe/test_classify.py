"""Every Stripe card failure, classified as issue #3 lists it, then read by the policy; the
network's own codes kept for the card-network rules (issue #13)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from payretry.domain.card_ledger import CardKey, EntryKind, Initiator, KeyKind, Network
from payretry.domain.network_rules import NetworkRules, check
from payretry.domain.policy import Outcome, RetryPolicy
from payretry.processors.stripe_classify import (
    advice_of,
    card_failure,
    classify_card_failure,
    redact,
)
from tests.conftest import NOW
from tests.unit.decisions import after_failure, first_retry

POLICY = RetryPolicy.standard()


def outcome(**fields: str | None) -> tuple[str | None, str | None, Outcome]:
    result = card_failure(**fields)
    decision = after_failure(
        POLICY,
        job_id="j",
        attempt_number=1,
        max_attempts=3,
        error_code=result.error_code or "",
        decline_code=result.decline_code,
        now=NOW,
        expires_at=None,
    )
    return result.error_code, result.decline_code, decision.outcome


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        (
            {"code": "card_declined", "decline_code": "insufficient_funds"},
            ("card_declined", "insufficient_funds", Outcome.RETRY),
        ),
        (
            {"code": "card_declined", "decline_code": "stolen_card"},
            ("card_declined", "stolen_card", Outcome.FAILED),
        ),
        (
            {"code": "card_declined", "decline_code": "generic_decline"},
            ("card_declined", "generic_decline", Outcome.RETRY),
        ),
        (
            {"code": "expired_card", "decline_code": "expired_card"},
            ("expired_card", None, Outcome.FAILED),
        ),
        (
            {"code": "processing_error", "decline_code": None},
            ("processing_error", None, Outcome.RETRY),
        ),
        ({"code": "card_declined", "decline_code": None}, ("card_declined", None, Outcome.FAILED)),
        # advice codes win over the decline code, both ways
        (
            {
                "code": "card_declined",
                "decline_code": "insufficient_funds",
                "advice_code": "do_not_try_again",
            },
            ("card_declined", "do_not_try_again", Outcome.FAILED),
        ),
        (
            {
                "code": "card_declined",
                "decline_code": "lost_card",
                "advice_code": "try_again_later",
            },
            ("card_declined", "try_again_later", Outcome.RETRY),
        ),
        (
            {
                "code": "card_declined",
                "decline_code": "do_not_honor",
                "advice_code": "confirm_card_data",
            },
            ("card_declined", "confirm_card_data", Outcome.FAILED),
        ),
        (
            {
                "code": "card_declined",
                "decline_code": "generic_decline",
                "network_advice_code": "03",
            },
            ("card_declined", "do_not_try_again", Outcome.FAILED),
        ),
        (
            {"code": "card_declined", "decline_code": "do_not_honor", "network_advice_code": "24"},
            ("card_declined", "try_again_later", Outcome.RETRY),
        ),
        (
            {"code": "authentication_required", "decline_code": "authentication_required"},
            ("authentication_required", "authentication_required", Outcome.FAILED),
        ),
    ],
)
def test_card_failures(fields: dict[str, str | None], expected: tuple[str, str, Outcome]) -> None:
    assert outcome(**fields) == expected


def test_the_stricter_advice_wins_when_stripe_and_the_network_disagree() -> None:
    assert advice_of("try_again_later", "03") == "do_not_try_again"
    assert advice_of("do_not_try_again", "02") == "do_not_try_again"
    assert advice_of("confirm_card_data", "24") == "confirm_card_data"
    assert advice_of(None, None) is None and advice_of("unknown", "99") is None


def test_notifications() -> None:
    assert card_failure(
        code="card_declined", decline_code="x", advice_code="confirm_card_data"
    ).notify
    assert card_failure(code="authentication_required", decline_code=None).notify
    assert card_failure(code="card_declined", decline_code="insufficient_funds").notify is None


def test_keys_and_card_numbers_are_redacted() -> None:
    text = redact("Invalid API Key provided: sk_live_****abcd for 4242 4242 4242 4242")
    assert text == "Invalid API Key provided: [redacted-key] for [redacted-number]"
    assert redact("rk_test_51Habc123") == "[redacted-key]"


# -- the network's codes keep their meaning (issue 13) ---------------------------------------

MAC_WAITS = {
    "02": timedelta(hours=72),
    "24": timedelta(hours=1),
    "25": timedelta(hours=24),
    "26": timedelta(days=2),
    "27": timedelta(days=4),
    "28": timedelta(days=6),
    "29": timedelta(days=8),
    "30": timedelta(days=10),
}
CARD = CardKey(KeyKind.CARD, "mastercard:fp_test")


def test_the_classification_keeps_the_networks_codes_and_the_card() -> None:
    decline = classify_card_failure(
        code="card_declined",
        decline_code="insufficient_funds",
        advice_code="try_again_later",
        network_advice_code=" 27 ",
        network_decline_code="51",
        card_network="MasterCard",
        card_fingerprint="fp_test",
    )
    assert (decline.network_advice_code, decline.network_decline_code) == ("27", "51")
    assert decline.card_network is Network.MASTERCARD and decline.card_fingerprint == "fp_test"
    assert decline.advice_code == "try_again_later" and decline.mac_meaning == "retry after 4 days"
    assert decline.result.decline_code == "try_again_later"
    assert decline.result.message is not None
    assert "network advice 27: retry after 4 days" in decline.result.message
    assert "network decline code 51" in decline.result.message
    entry = decline.ledger_entry(CARD, NOW, job_id="j1", attempt_number=2)
    assert (entry.kind, entry.network, entry.network_advice_code) == (
        EntryKind.DECLINE,
        Network.MASTERCARD,
        "27",
    )
    assert (entry.job_id, entry.attempt_number, entry.initiated_by) == ("j1", 2, Initiator.MERCHANT)


def test_codes_are_spelled_as_the_networks_tables_spell_them() -> None:
    decline = classify_card_failure(
        code="card_declined", decline_code=None, network_advice_code="1", network_decline_code="r0"
    )
    assert (decline.network_advice_code, decline.network_decline_code) == ("01", "R0")
    assert decline.result.decline_code == "confirm_card_data"
    assert classify_card_failure(code="card_declined", decline_code=None).card_network is (
        Network.UNKNOWN
    )


@pytest.mark.parametrize("mac", sorted(MAC_WAITS))
def test_each_mac_wait_is_kept_from_the_decline_to_the_next_try(mac: str) -> None:
    """A job queued after a MAC 24-30 (or 02) decline: all read as try_again_later, whose row
    waits 1 h first; the network rules move the retry to the MAC's own wait, never earlier
    (26-30 were retried days too early)."""
    decline = classify_card_failure(
        code="card_declined",
        decline_code="do_not_honor",
        network_advice_code=mac,
        card_network="mastercard",
        card_fingerprint="fp_test",
    )
    decision = first_retry(
        POLICY,
        job_id="j",
        error_code=decline.result.error_code or "",
        decline_code=decline.result.decline_code,
        now=NOW,
        expires_at=None,
    )
    assert decision.outcome is Outcome.RETRY and decision.row.code == "try_again_later"
    assert decision.next_retry_at == NOW + timedelta(hours=1)
    entry = decline.ledger_entry(CARD, NOW, job_id="j", attempt_number=0)
    verdict = check(
        NetworkRules(),
        [entry],
        network=decline.card_network,
        at=decision.next_retry_at,
        last_decline=entry,
    )
    expected = NOW + MAC_WAITS[mac]
    if expected == decision.next_retry_at:
        assert verdict.allowed
    else:
        assert verdict.postponed and verdict.at == expected
        assert verdict.rule == f"mastercard_mac_{mac}"
        assert verdict.reason.startswith(f"Mastercard MAC {mac}: retry no sooner than")


@pytest.mark.parametrize(
    ("fields", "rule"),
    [
        ({"network_advice_code": "03", "card_network": "mastercard"}, "mastercard_mac_03"),
        ({"network_advice_code": "21", "card_network": "mastercard"}, "mastercard_mac_21"),
        ({"network_advice_code": "01", "card_network": "mastercard"}, "mastercard_mac_01"),
        ({"network_decline_code": "R1", "card_network": "visa"}, "visa_category_1"),
        ({"network_decline_code": "14", "card_network": "visa"}, "visa_category_1"),
    ],
)
def test_hard_network_codes_stop_the_retry_even_where_the_policy_row_would_retry(
    fields: dict[str, str], rule: str
) -> None:
    decline = classify_card_failure(code="card_declined", decline_code="generic_decline", **fields)
    entry = decline.ledger_entry(CARD, NOW, job_id="j", attempt_number=1)
    verdict = check(
        NetworkRules(),
        [entry],
        network=decline.card_network,
        at=NOW + timedelta(days=3),
        last_decline=entry,
    )
    assert verdict.blocked and verdict.rule == rule
