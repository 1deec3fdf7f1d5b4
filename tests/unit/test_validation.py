"""Validation and redaction: opaque ids, codes, small metadata, no card data, no e-mail."""

from __future__ import annotations

import re
import time

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
    MAX_SHOWN,
    looks_like_card,
    looks_like_email,
    luhn_valid,
    parse_metadata_pairs,
    redact,
    sanitize_message,
    shown,
    unsafe_to_show,
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


# --- one detector, every separator (issue 11) -------------------------------------------------

SEPARATED = [
    "4242.4242.4242.4242",
    "4242  4242  4242  4242",  # double spaces
    "4242\u00a04242\u00a04242\u00a04242",  # no-break spaces
    "4242\u202f4242\u20094242\u20074242",  # narrow no-break, thin, figure spaces
    "4242\u30004242\u30004242\u30004242",  # ideographic space
    "4242\u200b4242\u200c4242\u200d4242",  # zero-width space, non-joiner, joiner
    "4242\u2060\u200e4242\ufeff4242\u00ad4242",  # word joiner, LRM, BOM, soft hyphen
    "4242\u20104242\u20134242\u20144242",  # hyphen, en dash, em dash
    "4242\u22124242\uff0d4242\ufe634242",  # minus sign, fullwidth and small hyphen-minus
    "4242_4242_4242_4242",
    "4242/4242/4242/4242",
    "4242\\4242\\4242\\4242",
    "4242 - 4242 - 4242 - 4242",
    "4242\n4242\r\n4242\t4242",
    "4242\u00b74242\u20224242\u30fb4242",  # middle dot, bullet, katakana middle dot
    "4\u03052\u03054\u03052\u0305" + "4242424242424242"[4:],  # combining overlines
    "\u0664\u0662\u0664\u0662" * 4,  # Arabic-Indic digits
    "\u06f4\u06f2\u06f4\u06f2" * 4,  # Extended Arabic-Indic digits
    "\u096a\u0968\u096a\u0968" * 4,  # Devanagari digits
    "\uff14\uff12\uff14\uff12" * 4,  # fullwidth digits
    "\U0001d7d2\U0001d7d0" * 8,  # mathematical bold digits (astral)
    "\u2074\u00b2\u2074\u00b2" + "424242424242",  # superscripts
]


@pytest.mark.parametrize("value", SEPARATED)
def test_cards_are_found_whatever_separates_their_digits(value: str) -> None:
    assert looks_like_card(value)
    assert looks_like_card(f"note: {value}, thanks")
    with pytest.raises(InvalidInput, match="card number") as caught:
        validate_metadata({"note": value.replace("\n", " ").replace("\r", " ").replace("\t", " ")})
    assert caught.value.field == "metadata.note"
    redacted = sanitize_message(f"card {value} declined")
    assert redacted == "card [redacted-number] declined"


@pytest.mark.parametrize(
    "value",
    [
        "bob@bücher.de",
        "o'neil@example.com",
        "用户@例子.广告",
        "jörg.müller@straße.example",
        "bob\uff20example.com",
        "bob@example\u3002com",
        "bob\u200b@example.com",
        "x+tag@xn--p1ai.ru",
    ],
)
def test_addresses_of_every_script_are_found_and_redacted_whole(value: str) -> None:
    assert looks_like_email(value)
    assert sanitize_message(f"mail {value} now") == "mail [redacted-email] now"
    with pytest.raises(InvalidInput, match="e-mail"):
        validate_id(value.replace("\u200b", ""), "user_id")


@pytest.mark.parametrize("value", [VISA, "4242_4242_4242_4242", THIRTEEN])
def test_codes_that_look_like_cards_are_refused_without_echo(value: str) -> None:
    for field in ("error_code", "decline_code"):
        with pytest.raises(InvalidInput, match="card number") as caught:
            validate_code(value, field)
        assert caught.value.field == field
        assert value[:4] not in str(caught.value)


def test_a_code_spelled_with_unicode_lookalikes_is_refused() -> None:
    # "\u212a" (Kelvin sign) and "\u017f" (long s) lower-/upper-case to ASCII letters.
    for value in ("\u212aode", "proce\u017f\u017fing_error", "network_\u0435rror"):
        with pytest.raises(InvalidInput, match="is not an error code"):
            validate_code(value, "error_code")


def test_a_rejected_code_is_quoted_only_when_harmless() -> None:
    with pytest.raises(InvalidInput) as caught:
        validate_code("not a code!", "error_code")
    assert "'not a code!'" in str(caught.value)
    for value in ("4242 4242 4242 4241!", "jane@example.com!", "x" * 5000):
        with pytest.raises(InvalidInput) as caught:
            validate_code(value, "error_code")
        message = str(caught.value)
        assert "4242" not in message and "jane" not in message and "xxxx" not in message


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("txn\u200b1", "invisible"),  # zero-width space: looks like "txn1"
        ("txn\u200d1", "invisible"),
        ("txn\u202e1", "invisible"),  # right-to-left override
        ("txn\u00a01", "invisible"),  # no-break space: looks like "txn 1"
        ("txn\u20281", "invisible"),  # line separator
        ("txn\ue0001", "invisible"),  # private use
        ("txn\U000e0041", "invisible"),  # a tag character
        ("txn\udcff", "UTF-8"),  # a lone surrogate: a byte that was not UTF-8
    ],
)
def test_ids_refuse_invisible_and_non_printing_characters(value: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message) as caught:
        validate_id(value, "transaction_id")
    assert caught.value.field == "transaction_id"


@pytest.mark.parametrize("key", ["4242424242424242", "4242.4242.4242.4242", "4242-4242-4242-4242"])
def test_metadata_keys_that_look_like_cards_are_refused_without_echo(key: str) -> None:
    with pytest.raises(InvalidInput, match="a key looks like a card number") as caught:
        validate_metadata({key: "x"})
    assert caught.value.field == "metadata"
    assert "4242" not in str(caught.value)


def test_metadata_values_keep_unicode_spaces_but_refuse_invisible_characters() -> None:
    assert validate_metadata({"note": "Soci\u00e9t\u00e9\u00a0G\u00e9n\u00e9rale"})
    for value in ("a\u200bb", "a\u2028b", "a\udcffb"):
        with pytest.raises(InvalidInput, match="invisible|UTF-8"):
            validate_metadata({"note": value})


def test_redaction_drops_format_characters_and_replaces_lone_surrogates() -> None:
    assert sanitize_message("a\u200bb\u202ec") == "abc"
    assert sanitize_message("bad \udcff byte") == "bad \ufffd byte"


@pytest.mark.parametrize(
    "value", ["4242424242424241", "jane@example.com", "id 1234 5678 9012", "x" * (MAX_SHOWN + 1)]
)
def test_shown_never_quotes_card_like_numbers_addresses_or_long_values(value: str) -> None:
    text = shown(value)
    assert value not in text and "1234" not in text and "jane" not in text


def test_shown_quotes_a_short_harmless_value() -> None:
    assert shown("abc") == "'abc'"
    assert shown("a\x1bb") == "'a\\x1bb'"  # repr: one line, escapes visible


# --- linear time -------------------------------------------------------------------------------

MEGABYTE = 1_000_000
WORST_CASES = {
    "single digits": "1 " * (MEGABYTE // 2),  # no Luhn-valid span: every span is looked at
    "pairs": "12 " * (MEGABYTE // 3),
    "groups of four": "1234 " * (MEGABYTE // 5),
    "one long run": "1" * MEGABYTE,
    "letters": "a" * MEGABYTE,
    "local parts": "a@" * (MEGABYTE // 2),
    "domains": "a@a." * (MEGABYTE // 4),
    "labels": "a@" + "a." * (MEGABYTE // 2),
    "addresses": "bob@example.com " * (MEGABYTE // 16),
    "cards": "4242 4242 4242 4242 " * (MEGABYTE // 20),
    "unicode": "\u0664\u00a0\u200b\u00e9" * (MEGABYTE // 4),
}


@pytest.mark.parametrize("text", list(WORST_CASES.values()), ids=list(WORST_CASES))
def test_a_megabyte_is_handled_in_well_under_a_second(text: str) -> None:
    """A bound, not a benchmark: each check takes at most about 0.3 s on an idle machine (the
    worst, a megabyte of tiny digit groups with no card in them); generous for a loaded one."""
    for check in (looks_like_card, looks_like_email, sanitize_message, redact, unsafe_to_show):
        started = time.perf_counter()
        check(text)
        elapsed = time.perf_counter() - started
        assert elapsed < 3.0, f"{check.__name__} took {elapsed:.2f}s on 1 MB"


def test_time_grows_linearly_not_quadratically() -> None:
    """Ten times the text takes nowhere near a hundred times as long."""
    unit = "1 " * 20_000 + "a@a." * 5_000

    def cost(text: str) -> float:
        best = float("inf")
        for _ in range(3):
            started = time.perf_counter()
            looks_like_card(text)
            redact(text)
            best = min(best, time.perf_counter() - started)
        return best

    small, large = cost(unit), cost(unit * 10)
    assert large < small * 40, (small, large)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # One address's domain runs into the next one's local part: one span, all of it.
        ("0@0.0A=@0.0A", "[redacted-email]"),
        ("see a@b.cc.dd@e.ff here", "see [redacted-email] here"),
        ("x@y.zz=@q.rs and m@n.op", "[redacted-email] and [redacted-email]"),
    ],
)
def test_chained_addresses_leave_no_address_behind(text: str, expected: str) -> None:
    redacted = sanitize_message(text)
    assert redacted == expected
    assert not looks_like_email(redacted)
