"""How a Stripe card failure maps onto the retry policy. Pure: plain values in, an AttemptResult
out; no SDK here, so every rule is unit-tested without a server.

The order, as issue #3 fixes it:
1. Stripe's `advice_code` and the card network's `network_advice_code` win when present:
   `do_not_try_again` -> failed; `try_again_later` -> retried; `confirm_card_data` -> failed, and
   the customer is asked to update the card. When the two disagree, the stricter one wins.
2. Otherwise the `decline_code` (the issuer's reason), then the error `code`: the policy looks
   the decline code up first, so `card_declined` + `insufficient_funds` follows its own row.
3. `authentication_required` (as a code or a decline code) is never retried off-session: the
   customer must authenticate (or, with checkout_fallback, complete a Checkout Session).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from payretry.domain.results import AttemptResult
from payretry.domain.validation import sanitize_message

DO_NOT_TRY_AGAIN = "do_not_try_again"
TRY_AGAIN_LATER = "try_again_later"
CONFIRM_CARD_DATA = "confirm_card_data"
AUTHENTICATION_REQUIRED = "authentication_required"

# Stripe's own advice codes (docs.stripe.com/declines#retrying-issuer-declines).
ADVICE: Mapping[str, str] = {
    DO_NOT_TRY_AGAIN: DO_NOT_TRY_AGAIN,
    TRY_AGAIN_LATER: TRY_AGAIN_LATER,
    CONFIRM_CARD_DATA: CONFIRM_CARD_DATA,
}

# The networks' merchant advice codes, as Stripe passes them in `network_advice_code`
# (Mastercard Merchant Advice Codes; Visa's category-1 "never retry" decline responses).
NETWORK_ADVICE: Mapping[str, str] = {
    "01": CONFIRM_CARD_DATA,  # new account information available
    "02": TRY_AGAIN_LATER,  # cannot approve at this time, try again later
    "03": DO_NOT_TRY_AGAIN,  # do not try again
    "04": TRY_AGAIN_LATER,  # token requirements not fulfilled for this token type
    "21": DO_NOT_TRY_AGAIN,  # payment cancellation (the cardholder stopped recurring payments)
    "24": TRY_AGAIN_LATER,  # retry after 1 hour
    "25": TRY_AGAIN_LATER,  # retry after 24 hours
    "26": TRY_AGAIN_LATER,  # retry after 2 days
    "27": TRY_AGAIN_LATER,  # retry after 4 days
    "28": TRY_AGAIN_LATER,  # retry after 6 days
    "29": TRY_AGAIN_LATER,  # retry after 8 days
    "30": TRY_AGAIN_LATER,  # retry after 10 days
    "40": DO_NOT_TRY_AGAIN,  # consumer non-reloadable prepaid card
    "41": DO_NOT_TRY_AGAIN,  # consumer single-use virtual card number
}
_STRICTNESS = (DO_NOT_TRY_AGAIN, CONFIRM_CARD_DATA, TRY_AGAIN_LATER)

NOTIFY_UPDATE_CARD = "your card was declined; please update or confirm your card details"
NOTIFY_AUTHENTICATE = (
    "your bank asks you to confirm this payment; please sign in and authenticate it"
)

_KEY = re.compile(r"\b(?:sk|rk|pk)_(?:test|live)_[A-Za-z0-9*]+")


def redact(text: str | None) -> str | None:
    """Stripe keys (even Stripe's own masked echo of one) never reach a log or the database;
    then the usual redaction of card numbers and e-mail addresses."""
    if text is None:
        return None
    return sanitize_message(_KEY.sub("[redacted-key]", text))


def advice_of(advice_code: str | None, network_advice_code: str | None) -> str | None:
    """The advice that wins: the stricter of Stripe's and the network's, or None."""
    found = {ADVICE.get(advice_code or ""), NETWORK_ADVICE.get((network_advice_code or "").strip())}
    for advice in _STRICTNESS:
        if advice in found:
            return advice
    return None


def needs_authentication(code: str | None, decline_code: str | None) -> bool:
    return AUTHENTICATION_REQUIRED in (code, decline_code)


def card_failure(
    *,
    code: str | None,
    decline_code: str | None,
    advice_code: str | None = None,
    network_advice_code: str | None = None,
    message: str | None = None,
    reference: str | None = None,
) -> AttemptResult:
    """A declined or failed card payment, as the policy reads it."""
    error_code = code or "card_declined"
    said = ", ".join(
        f"{name} {value}"
        for name, value in (
            ("decline code", decline_code),
            ("advice", advice_code),
            ("network advice", network_advice_code),
        )
        if value
    )
    text = redact(f"{message or 'card declined'}" + (f" ({said})" if said else ""))
    advice = advice_of(advice_code, network_advice_code)
    if advice == DO_NOT_TRY_AGAIN:
        return AttemptResult.failure(error_code, DO_NOT_TRY_AGAIN, text, reference=reference)
    if advice == CONFIRM_CARD_DATA:
        return AttemptResult.failure(
            error_code, CONFIRM_CARD_DATA, text, reference=reference, notify=NOTIFY_UPDATE_CARD
        )
    if advice == TRY_AGAIN_LATER:
        return AttemptResult.failure(error_code, TRY_AGAIN_LATER, text, reference=reference)
    if needs_authentication(code, decline_code):
        return AttemptResult.failure(
            error_code,
            AUTHENTICATION_REQUIRED,
            text,
            reference=reference,
            notify=NOTIFY_AUTHENTICATE,
        )
    if decline_code == error_code:
        decline_code = None  # `expired_card` / `expired_card`: one code, looked up once
    return AttemptResult.failure(error_code, decline_code, text, reference=reference)
