"""Properties of the one detector: every card and address found and redacted, however
spelled; redaction's output clean and stable; nothing else ever raised."""

from __future__ import annotations

import re
from typing import cast
from urllib.parse import quote

from hypothesis import assume, given
from hypothesis import strategies as st

from payretry.domain.validation import (
    MAX_MESSAGE_LENGTH,
    _luhn_span,
    _luhn_span_bits,
    looks_like_card,
    looks_like_email,
    luhn_valid,
    redact,
    sanitize_message,
    shown,
    validate_code,
    validate_id,
    validate_metadata,
)
from payretry.errors import InvalidInput
from payretry.masking import mask_secrets, mask_url
from tests.fuzz.conftest import FUZZ
from tests.fuzz.strategies import DIGITS, addresses, cards, hostile_text

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


@FUZZ
@given(before=hostile_text(), card=cards(), after=hostile_text())
def test_a_card_anywhere_is_found_and_redacted(before: str, card: str, after: str) -> None:
    text = f"{before}x{card}x{after}"  # a letter either side: the card's groups stay whole
    assert looks_like_card(text)
    cleaned = sanitize_message(text)
    assert cleaned is None or not looks_like_card(cleaned)
    assert not looks_like_card(redact(text))


@FUZZ
@given(before=hostile_text(), address=addresses(), after=hostile_text())
def test_an_address_anywhere_is_found_and_redacted(before: str, address: str, after: str) -> None:
    text = f"{before} {address} {after}"
    assert looks_like_email(text)
    assert not looks_like_email(redact(text))
    assert sanitize_message(f"mail {address} now") == "mail [redacted-email] now"


@FUZZ
@given(text=hostile_text(300))
def test_a_sanitized_message_is_clean_short_and_stable(text: str) -> None:
    result = sanitize_message(text)
    if result is None:
        return
    assert not looks_like_card(result) and not looks_like_email(result)
    assert not _CONTROL.search(result)
    assert not any(0xD800 <= ord(c) <= 0xDFFF for c in result)
    assert len(result) <= MAX_MESSAGE_LENGTH
    assert sanitize_message(result) == result


@FUZZ
@given(groups=st.lists(st.text(alphabet=DIGITS, min_size=1, max_size=7), min_size=2, max_size=12))
def test_both_span_checks_agree_with_the_definition(groups: list[str]) -> None:
    expected = False
    for i in range(len(groups)):
        digits = ""
        for group in groups[i:]:
            digits += group
            if len(digits) > 19:
                break
            if len(digits) >= 13 and luhn_valid(digits):
                expected = True
    assert _luhn_span(groups) is expected
    assert _luhn_span_bits(groups, "".join(groups).encode()) is expected


@FUZZ
@given(value=st.one_of(hostile_text(), st.integers(), st.floats(), st.none()))
def test_shown_never_quotes_card_data_or_an_address(value: object) -> None:
    text = shown(value)
    assert not looks_like_card(text) and not looks_like_email(text)
    assert not re.search(r"[0-9](?:[^A-Za-z]{0,3}[0-9]){11}", text) or "not shown" in text


@FUZZ
@given(value=st.one_of(hostile_text(), st.integers(), st.none(), st.lists(st.text(max_size=3))))
def test_validators_accept_clean_values_or_raise_invalid_input(value: object) -> None:
    for check in (
        lambda: validate_id(value, "transaction_id"),
        lambda: validate_code(value, "error_code"),
        lambda: validate_metadata({"note": value}),
        lambda: validate_metadata(
            cast("dict[str, object]", {value: "x"}) if isinstance(value, str | int) else {}
        ),
    ):
        try:
            result = check()
        except InvalidInput as exc:
            assert exc.exit_code == 2 and exc.field
            assert not looks_like_card(str(exc)) and not looks_like_email(str(exc))
            continue
        text = repr(result)
        assert not looks_like_card(text) and not looks_like_email(text)


_SECRET = st.text(
    alphabet=st.sampled_from("abcdefghijklmnopqrstuvwxyzABCDEFGHIJ0123456789-._~!$()*"),
    min_size=6,
    max_size=30,
)


_AROUND = (
    "postgresql://app:@db.internal:5432/pay?password=PassWord=sslpassword=token=&x=1",
    "connection failed: host=db",
)


@FUZZ
@given(secret=_SECRET, name=st.sampled_from(["password", "PassWord", "sslpassword", "token"]))
def test_a_secret_is_never_shown_wherever_it_is_put(secret: str, name: str) -> None:
    assume(not re.fullmatch(r"[0-9.\-]+", secret))
    # The texts around the secret must not hold it themselves ("connec" is in "connection").
    assume(not any(secret in part for part in _AROUND))
    for text in (
        f"postgresql://app:{quote(secret, safe='')}@db.internal:5432/pay",
        f"postgresql://app@db.internal:5432/pay?{name}={quote(secret, safe='')}&x=1",
        f"connection failed: {name}={secret} host=db",
        f'{{"{name}": "{secret}"}}',
    ):
        masked = mask_secrets(text)
        assert quote(secret, safe="") not in masked and secret not in masked, masked
        if text.startswith("postgresql"):
            assert quote(secret, safe="") not in mask_url(text)


@FUZZ
@given(text=hostile_text(200))
def test_masking_and_redaction_never_raise(text: str) -> None:
    assert isinstance(mask_secrets(text), str)
    assert isinstance(mask_url(text), str)
    assert isinstance(redact(text), str)
