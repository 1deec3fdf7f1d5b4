"""Money as integer minor units plus an ISO 4217 currency.

Currency exponents come from the `iso4217` package (ISO's own table), not a hand-written list:
JPY and KRW have 0 decimals, BHD, KWD, JOD, OMR and TND have 3.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import lru_cache

from payretry.domain.validation import no_card, shown
from payretry.errors import InvalidInput

_PLAIN_DECIMAL = re.compile(r"[0-9]{1,20}(?:\.[0-9]{1,20})?")  # ASCII digits: not "٥" or "５"
MAX_MINOR = 10**15  # a sanity bound far above any real payment, inside a signed 64-bit column


@lru_cache(maxsize=512)
def currency_exponent(code: str) -> int:
    """Decimal places of a currency, e.g. 2 for USD, 0 for JPY; InvalidInput if unknown."""
    from iso4217 import Currency

    if not isinstance(code, str) or len(code) > 8:
        code = code if isinstance(code, str) else ""
        raise InvalidInput(
            f"unknown currency {shown(code)} (expected an ISO 4217 code)", field="currency"
        )
    upper = code.strip().upper()
    # ASCII before upper(): "uſd".upper() is "USD".
    if len(upper) != 3 or not (upper.isascii() and upper.isalpha()) or not code.isascii():
        raise InvalidInput(
            f"unknown currency {shown(code)} (expected an ISO 4217 code)", field="currency"
        )
    try:
        exponent = Currency(upper).exponent
    except ValueError:
        raise InvalidInput(
            f"unknown currency {shown(code)} (expected an ISO 4217 code)", field="currency"
        ) from None
    if exponent is None:  # precious metals, testing codes: not money a card is charged in
        raise InvalidInput(
            f"currency {upper} has no minor unit and cannot be charged", field="currency"
        )
    return int(exponent)


@dataclass(frozen=True, slots=True)
class Money:
    amount_minor: int
    currency: str

    @classmethod
    def parse(cls, amount: str, currency: str) -> Money:
        """Parse a decimal string in major units (`99.99`, `1000` for JPY)."""
        code = currency.strip().upper() if isinstance(currency, str) else ""
        exponent = currency_exponent(currency if isinstance(currency, str) else "")
        text = amount.strip() if isinstance(amount, str) else str(amount)
        if not _PLAIN_DECIMAL.fullmatch(text):
            raise InvalidInput(
                f"{shown(amount)} is not a positive decimal amount like 99.99", field="amount"
            )
        try:
            value = Decimal(text)
        except InvalidOperation:  # pragma: no cover - the regex already excludes these
            raise InvalidInput(f"{shown(amount)} is not a decimal amount", field="amount") from None
        places = len(text.split(".", 1)[1]) if "." in text else 0
        if places > exponent:
            raise InvalidInput(
                f"{text} has {places} decimal places; {code} allows {exponent}", field="amount"
            )
        minor = int(value.scaleb(exponent))
        no_card(str(minor), "amount")  # a card number pasted into the wrong field
        if minor <= 0:
            raise InvalidInput("must be greater than zero", field="amount")
        if minor > MAX_MINOR:
            raise InvalidInput(
                f"{shown(text)} {code} is larger than payretry accepts", field="amount"
            )
        return cls(minor, code)

    @classmethod
    def of(cls, amount_minor: int, currency: str) -> Money:
        code = currency.strip().upper() if isinstance(currency, str) else ""
        currency_exponent(currency if isinstance(currency, str) else "")
        if isinstance(amount_minor, bool) or not isinstance(amount_minor, int):
            raise InvalidInput("must be an integer number of minor units", field="amount_minor")
        if amount_minor <= 0 or amount_minor > MAX_MINOR:
            raise InvalidInput("must be between 1 and 10^15 minor units", field="amount_minor")
        no_card(str(amount_minor), "amount_minor")
        return cls(amount_minor, code)

    @property
    def exponent(self) -> int:
        return currency_exponent(self.currency)

    def major(self) -> str:
        """The amount as a decimal string in major units: 99.99, 1000, 1.234."""
        exp = self.exponent
        if exp == 0:
            return str(self.amount_minor)
        whole, frac = divmod(self.amount_minor, 10**exp)
        return f"{whole}.{frac:0{exp}d}"

    def __str__(self) -> str:
        return f"{self.major()} {self.currency}"

    def default_priority(self) -> int:
        """Priority when none is given: the amount in hundredths of the major unit.

        Normalising the exponent keeps 1000 JPY from outranking 999.99 USD a hundredfold; payretry
        has no exchange rates, so amounts in different currencies are compared at face value.
        """
        exp = self.exponent
        if exp <= 2:
            return int(self.amount_minor * 10 ** (2 - exp))
        return int(self.amount_minor // 10 ** (exp - 2))
