"""Money: major-unit decimal strings in, integer minor units out, ISO 4217 exponents."""

from __future__ import annotations

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from payretry.domain.money import MAX_MINOR, Money, currency_exponent
from payretry.domain.validation import looks_like_card
from payretry.errors import InvalidInput

ZERO_DECIMAL = ["JPY", "KRW"]
THREE_DECIMAL = ["BHD", "KWD", "JOD", "OMR", "TND"]
CURRENCIES = ["USD", "EUR", "GBP", *ZERO_DECIMAL, *THREE_DECIMAL]


@pytest.mark.parametrize(
    ("amount", "currency", "minor"),
    [
        ("99.99", "USD", 9999),
        ("100", "USD", 10000),
        ("0.01", "USD", 1),
        ("1.5", "USD", 150),
        ("1.50", "EUR", 150),
        ("  12.34 ", "USD", 1234),
    ],
)
def test_parse_two_decimal_currency(amount: str, currency: str, minor: int) -> None:
    money = Money.parse(amount, currency)
    assert money == Money(minor, currency)


@pytest.mark.parametrize("currency", ZERO_DECIMAL)
def test_parse_zero_decimal_currency(currency: str) -> None:
    assert currency_exponent(currency) == 0
    assert Money.parse("1000", currency) == Money(1000, currency)
    assert Money.parse("1", currency).amount_minor == 1


@pytest.mark.parametrize("currency", ZERO_DECIMAL)
def test_zero_decimal_currency_refuses_any_fraction(currency: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        Money.parse("1.5", currency)
    assert caught.value.field == "amount"
    assert "allows 0" in str(caught.value)


@pytest.mark.parametrize("currency", THREE_DECIMAL)
def test_parse_three_decimal_currency(currency: str) -> None:
    assert currency_exponent(currency) == 3
    assert Money.parse("1.234", currency) == Money(1234, currency)
    assert Money.parse("0.001", currency).amount_minor == 1
    assert Money.parse("5", currency).amount_minor == 5000


@pytest.mark.parametrize("currency", THREE_DECIMAL)
def test_three_decimal_currency_refuses_four_places(currency: str) -> None:
    with pytest.raises(InvalidInput, match="4 decimal places"):
        Money.parse("1.2345", currency)


def test_usd_refuses_three_places() -> None:
    with pytest.raises(InvalidInput) as caught:
        Money.parse("1.234", "USD")
    assert caught.value.field == "amount"
    assert "USD allows 2" in str(caught.value)


def test_lower_case_currency_is_accepted_and_normalised() -> None:
    money = Money.parse("10.00", "usd")
    assert money.currency == "USD"
    assert money == Money.parse("10", "USD")
    assert Money.parse("1000", " jpy ").currency == "JPY"


@pytest.mark.parametrize(
    "amount",
    [
        "-1",
        "-0.01",
        "0",
        "0.00",
        "0.0",
        "NaN",
        "nan",
        "inf",
        "Infinity",
        "-inf",
        "1e3",
        "1E3",
        "1.5e2",
        "+5",
        ".5",
        "5.",
        "1,000",
        "1 000",
        "0x10",
        "",
        "   ",
        "abc",
        "12.34.56",
    ],
)
def test_parse_refuses_bad_amounts(amount: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        Money.parse(amount, "USD")
    assert caught.value.field == "amount"
    assert str(caught.value).startswith("amount")


def test_parse_refuses_amount_over_the_sanity_bound() -> None:
    with pytest.raises(InvalidInput, match="larger"):
        Money.parse(str(MAX_MINOR // 100 + 1), "USD")
    assert Money.parse(str(MAX_MINOR // 100), "USD").amount_minor == MAX_MINOR


@pytest.mark.parametrize("currency", ["XYZ", "US", "USDD", "", "12A", "€"])
def test_unknown_currency_is_refused(currency: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        Money.parse("10", currency)
    assert caught.value.field == "currency"


def test_currency_without_minor_unit_is_refused() -> None:
    with pytest.raises(InvalidInput, match="no minor unit"):
        currency_exponent("XAU")  # gold: ISO 4217 gives it no exponent


def test_of_validates_minor_units() -> None:
    assert Money.of(500, "jpy") == Money(500, "JPY")
    for bad in (0, -1, MAX_MINOR + 1):
        with pytest.raises(InvalidInput):
            Money.of(bad, "USD")
    with pytest.raises(InvalidInput):
        Money.of(True, "USD")
    with pytest.raises(InvalidInput):
        Money.of(100, "ZZZ")


@pytest.mark.parametrize(
    ("money", "major", "text"),
    [
        (Money(9999, "USD"), "99.99", "99.99 USD"),
        (Money(5, "USD"), "0.05", "0.05 USD"),
        (Money(1000, "JPY"), "1000", "1000 JPY"),
        (Money(1234, "BHD"), "1.234", "1.234 BHD"),
        (Money(1, "KWD"), "0.001", "0.001 KWD"),
    ],
)
def test_major_and_str(money: Money, major: str, text: str) -> None:
    assert money.major() == major
    assert str(money) == text


@settings(max_examples=150)
@given(
    minor=st.integers(min_value=1, max_value=MAX_MINOR),
    currency=st.sampled_from(CURRENCIES),
)
def test_round_trip_parse_of_major(minor: int, currency: str) -> None:
    assume(not looks_like_card(str(minor)))  # refused: see test_card_like_amounts_are_refused
    original = Money.of(minor, currency)
    assert Money.parse(original.major(), currency) == original
    assert Money.parse(original.major(), currency.lower()) == original


@pytest.mark.parametrize(
    ("amount", "currency"),
    [("4222222222222", "JPY"), ("42222222222.22", "USD"), ("4242 4242 4242 4242", "USD")],
)
def test_card_like_amounts_are_refused_without_echo(amount: str, currency: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        Money.parse(amount, currency)
    assert caught.value.field == "amount"
    assert "4222" not in str(caught.value) and "4242" not in str(caught.value)
    with pytest.raises(InvalidInput, match="card number"):
        Money.of(4222222222222, "JPY")


@pytest.mark.parametrize("currency", ["uſd", "ＵＳＤ", "\u0055SD\u200b", "U\u0301SD"])
def test_non_ascii_currencies_are_refused(currency: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        Money.parse("1.00", currency)
    assert caught.value.field == "currency"


@pytest.mark.parametrize(
    ("money", "priority"),
    [
        (Money(9999, "USD"), 9999),  # 99.99 USD -> 9999 hundredths
        (Money(1000, "JPY"), 100000),  # 1000 JPY -> 1000.00
        (Money(1, "KRW"), 100),
        (Money(1234, "BHD"), 123),  # 1.234 BHD -> 1.23
        (Money(9, "KWD"), 0),  # 0.009 KWD rounds down
        (Money(12345, "CLF"), 123),  # four decimals
    ],
)
def test_default_priority_normalises_exponent(money: Money, priority: int) -> None:
    assert money.default_priority() == priority


@settings(max_examples=50)
@given(
    units=st.integers(min_value=1, max_value=10**9),
    left=st.sampled_from(CURRENCIES),
    right=st.sampled_from(CURRENCIES),
)
def test_default_priority_compares_face_values(units: int, left: str, right: str) -> None:
    """The same number of major units gets the same priority in any currency."""
    a = Money.parse(str(units), left)
    b = Money.parse(str(units), right)
    assert a.default_priority() == b.default_priority() == units * 100
    bigger = Money.parse(str(units + 1), left)
    assert bigger.default_priority() > b.default_priority()
