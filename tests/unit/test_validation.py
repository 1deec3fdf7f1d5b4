"""Validation and redaction: opaque ids, codes, small metadata, no card data, no e-mail."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from payretry.domain.validation import (
    MAX_CODE_LENGTH,
    MAX_ID_LENGTH,
    MAX_MESSAGE_LENGTH,
    MAX_METADATA_KEY_LENGTH,
    MAX_METADATA_KEYS,
    MAX_METADATA_VALUE_LENGTH,
    looks_like_card,
    looks_like_email,
    luhn_valid,
    parse_metadata_pairs,
    sanitize_message,
    validate_code,
    validate_id,
    validate_metadata,
)
from payretry.errors import InvalidInput

VISA = "4242424242424242"  # Luhn-valid, 16 digits
AMEX = "378282246310005"  # Luhn-valid, 15 digits
THIRTEEN = "4222222222222"  # Luhn-valid, 13 digits
DIGITS = "0123456789"


def luhn_complete(prefix: str) -> str:
    """`prefix` plus the check digit that makes it Luhn-valid."""
    for check in DIGITS:
        if luhn_valid(prefix + check):
            return prefix + check
    raise AssertionError("unreachable")  # pragma: no cover


def luhn_break(number: str) -> str:
    """`number` with its check digit changed so that it is not Luhn-valid."""
    last = int(number[-1])
    return number[:-1] + str((last + 1) % 10)


# --- Luhn -----------------------------------------------------------------------------------


@pytest.mark.parametrize("number", [VISA, AMEX, THIRTEEN, "79927398713", "0"])
def test_luhn_valid_numbers(number: str) -> None:
    assert luhn_valid(number)


@pytest.mark.parametrize("number", ["4242424242424241", "79927398710", "1234567812345678"])
def test_luhn_invalid_numbers(number: str) -> None:
    assert not luhn_valid(number)


@settings(max_examples=100)
@given(prefix=st.text(alphabet=DIGITS, min_size=12, max_size=18))
def test_luhn_check_digit_is_unique(prefix: str) -> None:
    valid = [check for check in DIGITS if luhn_valid(prefix + check)]
    assert len(valid) == 1


# --- ids ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value", ["txn_123", "pi_3Nabc", "a", "x" * MAX_ID_LENGTH, "ünïcødé-id", "a b", "1234"]
)
def test_valid_ids_pass_unchanged(value: str) -> None:
    assert validate_id(value, "transaction_id") == value


@pytest.mark.parametrize("value", [None, ""])
def test_missing_required_id(value: str | None) -> None:
    with pytest.raises(InvalidInput, match="is required") as caught:
        validate_id(value, "transaction_id")
    assert caught.value.field == "transaction_id"


@pytest.mark.parametrize("value", [None, ""])
def test_missing_optional_id_is_none(value: str | None) -> None:
    assert validate_id(value, "customer", required=False) is None


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("x" * (MAX_ID_LENGTH + 1), "longer than 255"),
        (" txn", "whitespace"),
        ("txn ", "whitespace"),
        ("\ttxn", "whitespace"),
        ("   ", "whitespace"),
        ("txn\x00id", "control"),
        ("txn\nid", "control"),
        ("txn\x1bid", "control"),
        ("txn\x7fid", "control"),
        ("txn\x85id", "control"),
        (VISA, "card"),
        ("4242 4242 4242 4242", "card"),
        ("ref-4242-4242-4242-4242", "card"),
        ("jane.doe@example.com", "e-mail"),
        ("user:jane+tag@mail.example.co.uk", "e-mail"),
        (123, "must be a string"),
    ],
)
def test_bad_ids_are_refused(value: object, message: str) -> None:
    with pytest.raises(InvalidInput, match=message) as caught:
        validate_id(value, "user_id")
    assert caught.value.field == "user_id"
    assert str(caught.value).startswith("user_id: ")


# --- codes ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("card_declined", "card_declined"),
        ("Card_Declined", "card_declined"),
        ("  insufficient_funds ", "insufficient_funds"),
        ("error42", "error42"),
        ("a" * MAX_CODE_LENGTH, "a" * MAX_CODE_LENGTH),
    ],
)
def test_validate_code_normalises(value: str, code: str) -> None:
    assert validate_code(value, "error_code") == code


@pytest.mark.parametrize(
    "value", ["card-declined", "card declined", "a" * (MAX_CODE_LENGTH + 1), "café", "x!", "   "]
)
def test_validate_code_refuses(value: str) -> None:
    with pytest.raises(InvalidInput, match="is not an error code") as caught:
        validate_code(value, "decline_code")
    assert caught.value.field == "decline_code"


def test_validate_code_required_and_optional() -> None:
    with pytest.raises(InvalidInput, match="is required"):
        validate_code("", "error_code")
    with pytest.raises(InvalidInput, match="is required"):
        validate_code(None, "error_code")
    assert validate_code(None, "decline_code", required=False) is None
    assert validate_code("", "decline_code", required=False) is None
    with pytest.raises(InvalidInput, match="must be a string"):
        validate_code(42, "error_code")


# --- metadata -------------------------------------------------------------------------------


def test_metadata_within_limits_passes() -> None:
    values = {f"k{i}": "v" * MAX_METADATA_VALUE_LENGTH for i in range(MAX_METADATA_KEYS)}
    assert validate_metadata(values) == values


def test_metadata_numbers_become_strings() -> None:
    assert validate_metadata({"plan": "pro", "seats": 5, "ratio": 0.5}) == {
        "plan": "pro",
        "seats": "5",
        "ratio": "0.5",
    }


def test_metadata_key_charset_and_length_limits() -> None:
    assert validate_metadata({"a.b-c_D9": "x"}) == {"a.b-c_D9": "x"}
    assert validate_metadata({"k" * MAX_METADATA_KEY_LENGTH: "x"})
    with pytest.raises(InvalidInput, match="longer than 40"):
        validate_metadata({"k" * (MAX_METADATA_KEY_LENGTH + 1): "x"})
    for key in ["", "has space", "slash/key", "ключ", "a=b"]:
        with pytest.raises(InvalidInput, match="must be letters") as caught:
            validate_metadata({key: "x"})
        assert caught.value.field == "metadata"


def test_metadata_too_many_keys() -> None:
    values = {f"k{i}": "v" for i in range(MAX_METADATA_KEYS + 1)}
    with pytest.raises(InvalidInput, match="more than 20 keys") as caught:
        validate_metadata(values)
    assert caught.value.field == "metadata"


def test_metadata_value_too_long() -> None:
    with pytest.raises(InvalidInput, match="longer than 500"):
        validate_metadata({"note": "v" * (MAX_METADATA_VALUE_LENGTH + 1)})


@pytest.mark.parametrize("value", [True, None, ["a"], {"a": "b"}])
def test_metadata_values_must_be_scalars(value: object) -> None:
    with pytest.raises(InvalidInput, match="must be a string"):
        validate_metadata({"k": value})


def test_metadata_value_with_control_characters() -> None:
    with pytest.raises(InvalidInput, match="control"):
        validate_metadata({"k": "a\nb"})


@pytest.mark.parametrize(
    "value",
    [
        VISA,
        AMEX,
        THIRTEEN,
        "4242 4242 4242 4242",
        "4242-4242-4242-4242",
        "3782 822463 10005",
        "card: 4242 4242 4242 4242, thanks",
        "qty 3 4242424242424242",  # another number right before the card
        "4242424242424242 12/27",  # the expiry right after the card
        "4242424242424242 1",
    ],
)
def test_metadata_refuses_card_numbers(value: str) -> None:
    assert looks_like_card(value)
    with pytest.raises(InvalidInput, match="card number") as caught:
        validate_metadata({"note": value})
    assert caught.value.field == "metadata.note"


@pytest.mark.parametrize(
    "value",
    [
        luhn_break(VISA),
        "4242 4242 4242 4241",
        "4242-4242-4242-4241",
        "123456789012",  # 12 digits, Luhn-valid or not, too short to be a card
        "1234-5678-9012",
        "order 2026-11-22",
        "+1 555 0100",
        "12345678901234567890",  # 20 digits in one run: too long to be a card
    ],
)
def test_metadata_allows_non_cards(value: str) -> None:
    assert not looks_like_card(value)
    assert validate_metadata({"note": value}) == {"note": value}


_around = {
    "before": st.sampled_from(["", "card ", "ref: ", "x"]),
    "after": st.sampled_from(["", " ok", ".", "/x"]),
}


@settings(max_examples=100)
@given(
    prefix=st.text(alphabet=DIGITS, min_size=12, max_size=18),
    separator=st.sampled_from(["", " ", "-"]),
    group=st.integers(min_value=1, max_value=6),
    **_around,
)
def test_luhn_valid_runs_are_refused_however_grouped(
    prefix: str, separator: str, group: int, before: str, after: str
) -> None:
    card = luhn_complete(prefix)
    parts = [card[i : i + group] for i in range(0, len(card), group)]
    value = before + separator.join(parts) + after
    assert looks_like_card(value)
    with pytest.raises(InvalidInput, match="card number"):
        validate_metadata({"note": value})


@settings(max_examples=100)
@given(
    prefix=st.text(alphabet=DIGITS, min_size=12, max_size=18),
    separator=st.sampled_from(["", " ", "-"]),
    **_around,
)
def test_luhn_invalid_runs_pass(prefix: str, separator: str, before: str, after: str) -> None:
    number = luhn_break(luhn_complete(prefix))
    half = len(number) // 2  # two groups: no group on its own is long enough to be a card
    value = before + number[:half] + separator + number[half:] + after
    assert not looks_like_card(value)
    assert validate_metadata({"note": value}) == {"note": value}


@pytest.mark.parametrize(
    "value", ["jane@example.com", "contact: j.doe+x@mail.example.org", "A_B@Sub-Domain.IO"]
)
def test_metadata_refuses_email(value: str) -> None:
    assert looks_like_email(value)
    with pytest.raises(InvalidInput, match="e-mail") as caught:
        validate_metadata({"contact": value})
    assert caught.value.field == "metadata.contact"


@pytest.mark.parametrize("value", ["@handle", "a@b", "user at example dot com", "x@y.z"])
def test_not_emails(value: str) -> None:
    assert not looks_like_email(value)


def test_parse_metadata_pairs() -> None:
    assert parse_metadata_pairs(["a=1", "b=x=y", "c="]) == {"a": "1", "b": "x=y", "c": ""}
    assert parse_metadata_pairs([]) == {}
    for bad in (["novalue"], ["=x"]):
        with pytest.raises(InvalidInput, match="KEY=VALUE"):
            parse_metadata_pairs(bad)
    with pytest.raises(InvalidInput, match="given twice"):
        parse_metadata_pairs(["a=1", "a=2"])


# --- sanitize_message -----------------------------------------------------------------------


def test_sanitize_none_and_empty() -> None:
    assert sanitize_message(None) is None
    assert sanitize_message("") is None
    assert sanitize_message(" \n\t ") is None


def test_sanitize_keeps_ordinary_text() -> None:
    text = "Your card has insufficient funds (code 51, attempt 2 of 3)."
    assert sanitize_message(text) == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"card {VISA} declined", "card [redacted-number] declined"),
        ("card 4242 4242 4242 4242 declined", "card [redacted-number] declined"),
        ("card 4242-4242-4242-4241 declined", "card [redacted-number] declined"),
        ("mail jane.doe@example.com now", "mail [redacted-email] now"),
        ("a\x00b\nc", "a b c"),
    ],
)
def test_sanitize_redacts(text: str, expected: str) -> None:
    assert sanitize_message(text) == expected


def test_sanitize_caps_length() -> None:
    result = sanitize_message("x" * 5000)
    assert result is not None
    assert len(result) == MAX_MESSAGE_LENGTH
    assert result.endswith("…")
    exact = "y" * MAX_MESSAGE_LENGTH
    assert sanitize_message(exact) == exact


def test_sanitize_redacts_before_capping() -> None:
    """A card number straddling the cap is still redacted, not cut in half and kept."""
    text = "x" * (MAX_MESSAGE_LENGTH - 8) + " " + VISA
    result = sanitize_message(text)
    assert result is not None
    assert "4242" not in result


def test_sanitize_control_characters_cannot_hide_a_card() -> None:
    result = sanitize_message("card 42424242\x0042424242 end")
    assert result is not None
    assert not looks_like_card(result)
    assert "42424242" not in result


def test_sanitize_redacts_email_with_digits_in_full() -> None:
    result = sanitize_message("from john.424242424242@example.com")
    assert result == "from [redacted-email]"


_message_text = st.text(
    alphabet=st.sampled_from(list("abc xyz.@-_\n\x00") + list(DIGITS)), max_size=200
)


@settings(max_examples=200)
@given(text=_message_text)
def test_sanitized_messages_hold_no_card_email_or_control(text: str) -> None:
    result = sanitize_message(text)
    if result is None:
        return
    assert not looks_like_card(result)
    assert not looks_like_email(result)
    assert not re.search(r"[\x00-\x1f\x7f-\x9f]", result)
    assert len(result) <= MAX_MESSAGE_LENGTH
    assert sanitize_message(result) == result  # sanitizing twice changes nothing


@settings(max_examples=50)
@given(prefix=st.text(alphabet=DIGITS, min_size=12, max_size=18), words=st.text(max_size=30))
def test_sanitize_always_redacts_a_card(prefix: str, words: str) -> None:
    card = luhn_complete(prefix)
    result = sanitize_message(f"{words} {card} {words}")
    assert result is not None
    assert card not in result
    assert not looks_like_card(result)
