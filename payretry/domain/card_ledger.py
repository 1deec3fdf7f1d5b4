"""A card's ledger: who a card is (its key), and one entry per authorization sent on it.

Pure values for the network rules (payretry/domain/network_rules.py). The key is the best
identity known: the network and the processor's card fingerprint, else the payment method, else
the customer. Never card data: a key or fingerprint that looks like a card number is refused.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from payretry.domain.validation import looks_like_card, validate_id
from payretry.errors import InvalidInput


class Network(StrEnum):
    VISA = "visa"
    MASTERCARD = "mastercard"
    AMEX = "amex"
    DISCOVER = "discover"
    DINERS = "diners"
    JCB = "jcb"
    UNIONPAY = "unionpay"
    UNKNOWN = "unknown"

    @classmethod
    def of(cls, brand: str | Network | None) -> Network:
        """A processor's brand (`visa`, `MasterCard`, `American Express`), leniently: UNKNOWN
        for anything else, never an error."""
        if isinstance(brand, Network):
            return brand
        if not brand:
            return cls.UNKNOWN
        found = _ALIASES.get(brand)  # as stored: "visa", "mastercard" (the claim's hot path)
        if found is not None:
            return found
        return _ALIASES.get(re.sub(r"[\s_\-]", "", brand.lower()), cls.UNKNOWN)

    @classmethod
    def parse(cls, text: str, *, field: str = "card_network") -> Network:
        """A network named by an operator (`--card-network`), strictly."""
        key = re.sub(r"[\s_\-]", "", text.strip().lower())
        if key not in _ALIASES:
            names = ", ".join(n.value for n in cls)
            raise InvalidInput(f"{text!r} is not a card network (one of: {names})", field=field)
        return _ALIASES[key]


_ALIASES: Mapping[str, Network] = {
    **{n.value: n for n in Network},
    "mc": Network.MASTERCARD,
    "americanexpress": Network.AMEX,
    "dinersclub": Network.DINERS,
}


class Initiator(StrEnum):
    MERCHANT = "merchant"  # merchant-initiated (off-session): payretry's own retries
    CUSTOMER = "customer"  # customer-initiated (the customer completes a payment)


class EntryKind(StrEnum):
    """One ledger entry per authorization: written as ATTEMPT when sent (so a racing worker
    sees the slot taken), settled to DECLINE or APPROVAL with the attempt's outcome."""

    ATTEMPT = "attempt"  # sent, outcome not recorded yet: counted as a possible decline
    DECLINE = "decline"
    APPROVAL = "approval"


class KeyKind(StrEnum):
    CARD = "card"  # network + the processor's card fingerprint: one card, whatever its jobs
    PAYMENT_METHOD = "payment_method"
    CUSTOMER = "customer"


def _refuse_card_number(value: str, field: str) -> None:
    """Refused without echoing it: a card number never reaches a log or a message."""
    if looks_like_card(value):
        raise InvalidInput(
            "looks like a card number; give the processor's id or fingerprint, never card data",
            field=field,
        )


def _identifier(value: str, field: str) -> str:
    """An opaque id, as every id payretry keeps (validate_id): no card number, no e-mail."""
    _refuse_card_number(value, field)
    return validate_id(value.strip(), field) or ""


@dataclass(frozen=True, slots=True, order=True)
class CardKey:
    """Whose ledger an attempt counts in. `str()` gives `card:visa:FP`, `payment_method:pm_1`
    or `customer:cus_1`; `parse` reads those back (and a bare `pm_...` or `cus_...`)."""

    kind: KeyKind
    value: str

    def __str__(self) -> str:
        return f"{self.kind}:{self.value}"  # a StrEnum formats as its value

    @classmethod
    def parse(cls, text: str, *, field: str = "KEY") -> CardKey:
        raw = text.strip()
        _refuse_card_number(raw, field)
        kind_text, sep, rest = raw.partition(":")
        if not sep:
            if raw.startswith(("pm_", "card_", "src_")):  # Stripe's payment method ids
                kind = KeyKind.PAYMENT_METHOD
            elif raw.startswith("cus_"):
                kind = KeyKind.CUSTOMER
            else:
                raise InvalidInput(
                    f"{text!r} is not a card key (card:NETWORK:FINGERPRINT, "
                    "payment_method:ID, customer:ID, pm_..., cus_...)",
                    field=field,
                )
            return cls(kind, _identifier(raw, field))
        try:
            kind = KeyKind(kind_text)
        except ValueError:
            raise InvalidInput(
                f"{kind_text!r} is not a card key kind (card, payment_method, customer)",
                field=field,
            ) from None
        if kind is KeyKind.CARD:
            network, sep, fingerprint = rest.partition(":")
            if not sep:
                raise InvalidInput("a card key is card:NETWORK:FINGERPRINT", field=field)
            return cls(
                kind, f"{Network.parse(network, field=field)}:{_identifier(fingerprint, field)}"
            )
        return cls(kind, _identifier(rest, field))


def card_key(
    *,
    network: Network | str | None = None,
    fingerprint: str | None = None,
    payment_method: str | None = None,
    customer: str | None = None,
) -> CardKey | None:
    """The best key known: the card (a fingerprint with a known network), else the payment
    method, else the customer; None when nothing is known. The kind is part of the key."""
    net = Network.of(network)
    if fingerprint and fingerprint.strip() and net is not Network.UNKNOWN:
        return CardKey(KeyKind.CARD, f"{net}:{_identifier(fingerprint, 'card_fingerprint')}")
    if payment_method and payment_method.strip():
        return CardKey(KeyKind.PAYMENT_METHOD, _identifier(payment_method, "payment_method"))
    if customer and customer.strip():
        return CardKey(KeyKind.CUSTOMER, _identifier(customer, "customer"))
    return None


def network_code(code: str | None) -> str | None:
    """A network code as the tables spell it: `r0` -> `R0`, `1` -> `01`; None when empty."""
    text = (code or "").strip().upper()
    if not text:
        return None
    return text.zfill(2) if text.isdigit() else text


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One authorization on a card. `attempt_number` 0 is the decline that queued the job (not
    a reattempt); 1, 2, ... are payretry's attempts; None: not known (counted as a reattempt)."""

    at: datetime
    card: CardKey
    network: Network
    kind: EntryKind
    initiated_by: Initiator = Initiator.MERCHANT
    network_advice_code: str | None = None  # Mastercard's MAC
    network_decline_code: str | None = None  # the issuer's response code (Visa's categories)
    job_id: str | None = None
    attempt_number: int | None = None

    def __post_init__(self) -> None:
        if self.at.tzinfo is None:
            raise InvalidInput("must be timezone-aware", field="at")
        if self.network_advice_code is not None:  # most entries carry no code: left as they are
            object.__setattr__(self, "network_advice_code", network_code(self.network_advice_code))
        if self.network_decline_code is not None:
            code = network_code(self.network_decline_code)
            object.__setattr__(self, "network_decline_code", code)

    @property
    def reattempt(self) -> bool:
        return self.attempt_number != 0

    @property
    def possible_decline(self) -> bool:
        return self.kind is not EntryKind.APPROVAL
