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

Each network code keeps its meaning: `classify_card_failure` returns, beside the AttemptResult,
the network's own codes and the card's identity (`CardDecline`), which the card ledger records
and the network rules read. Mastercard MAC 24-30 are `try_again_later` for the policy (the row
decides how many attempts), and their waits (1 h, 24 h, 2, 4, 6, 8, 10 days) are the network
rules' (payretry/domain/network_rules.py): a retry is never sent before the MAC allows.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime

from payretry.domain.card_ledger import (
    CardKey,
    EntryKind,
    Initiator,
    LedgerEntry,
    Network,
    network_code,
)
from payretry.domain.network_rules import MAC_MEANING
from payretry.domain.network_rules import advice_of as advice_of  # one rule, in the domain
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
# (Mastercard Merchant Advice Codes): what each means as Stripe's advice, from the one table in
# the network rules. MAC 24-30 all mean "try again later"; their waits differ, and the network
# rules hold them.
NETWORK_ADVICE: Mapping[str, str] = {code: advice for code, (advice, _) in MAC_MEANING.items()}

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


def needs_authentication(code: str | None, decline_code: str | None) -> bool:
    return AUTHENTICATION_REQUIRED in (code, decline_code)


@dataclass(frozen=True, slots=True)
class CardDecline:
    """A classified card failure with what the card network said and which card it was: what
    the card ledger records. No card data: the brand and Stripe's fingerprint only."""

    result: AttemptResult
    advice_code: str | None = None  # Stripe's: try_again_later, do_not_try_again, ...
    network_advice_code: str | None = None  # Mastercard's MAC: "01", "03", "24" ...
    network_decline_code: str | None = None  # the issuer's response code: "51", "R0" ...
    card_network: Network = Network.UNKNOWN
    card_fingerprint: str | None = None

    @property
    def mac_meaning(self) -> str | None:
        """The MAC in words ("retry after 4 days"), or None."""
        meaning = MAC_MEANING.get(self.network_advice_code or "")
        return meaning[1] if meaning else None

    def ledger_entry(
        self,
        card: CardKey,
        at: datetime,
        *,
        job_id: str | None,
        attempt_number: int | None,
        initiated_by: Initiator = Initiator.MERCHANT,
    ) -> LedgerEntry:
        """This decline as the card ledger records it."""
        return LedgerEntry(
            at,
            card,
            self.card_network,
            EntryKind.DECLINE,
            initiated_by,
            self.network_advice_code,
            self.network_decline_code,
            job_id,
            attempt_number,
        )


def classify_card_failure(
    *,
    code: str | None,
    decline_code: str | None,
    advice_code: str | None = None,
    network_advice_code: str | None = None,
    network_decline_code: str | None = None,
    card_network: str | None = None,
    card_fingerprint: str | None = None,
    message: str | None = None,
    reference: str | None = None,
) -> CardDecline:
    """A declined or failed card payment, as the policy reads it (`.result`) and as the card
    network said it (the codes, kept as the network spells them)."""
    mac, issuer = network_code(network_advice_code), network_code(network_decline_code)
    network = Network.of(card_network)
    fingerprint = (card_fingerprint or "").strip() or None
    advice = (advice_code or "").strip() or None
    result = _result(
        code=code,
        decline_code=decline_code,
        advice_code=advice_code,
        network_advice_code=mac,
        network_decline_code=issuer,
        message=message,
        reference=reference,
    )
    result = replace(  # what the card ledger records of this decline
        result,
        advice_code=advice,
        network_advice_code=mac,
        network_decline_code=issuer,
        card_network=network.value if network is not Network.UNKNOWN else None,
        card_fingerprint=fingerprint,
    )
    return CardDecline(result, advice, mac, issuer, network, fingerprint)


def card_failure(
    *,
    code: str | None,
    decline_code: str | None,
    advice_code: str | None = None,
    network_advice_code: str | None = None,
    network_decline_code: str | None = None,
    card_network: str | None = None,
    card_fingerprint: str | None = None,
    message: str | None = None,
    reference: str | None = None,
) -> AttemptResult:
    """A declined or failed card payment, as the policy reads it, with the network's codes and
    the card's identity for the card ledger."""
    return classify_card_failure(
        code=code,
        decline_code=decline_code,
        advice_code=advice_code,
        network_advice_code=network_advice_code,
        network_decline_code=network_decline_code,
        card_network=card_network,
        card_fingerprint=card_fingerprint,
        message=message,
        reference=reference,
    ).result


def _result(
    *,
    code: str | None,
    decline_code: str | None,
    advice_code: str | None,
    network_advice_code: str | None,
    network_decline_code: str | None,
    message: str | None,
    reference: str | None,
) -> AttemptResult:
    error_code = code or "card_declined"
    meaning = MAC_MEANING.get(network_advice_code or "")
    said = ", ".join(
        f"{name} {value}"
        for name, value in (
            ("decline code", decline_code),
            ("advice", advice_code),
            (
                "network advice",
                f"{network_advice_code}: {meaning[1]}" if meaning else network_advice_code,
            ),
            ("network decline code", network_decline_code),
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
