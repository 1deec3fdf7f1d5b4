"""Every Stripe card failure, classified as issue #3 lists it, then read by the policy."""

from __future__ import annotations

import pytest

from payretry.domain.policy import Outcome, RetryPolicy
from payretry.processors.stripe_classify import advice_of, card_failure, redact
from tests.conftest import NOW
from tests.unit.decisions import after_failure

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
