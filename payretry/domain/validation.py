"""Input validation and redaction. payretry stores no card data and no PII.

Identifiers are opaque strings; metadata is a small map of short strings; error messages are
sanitized (card-number-like digit runs and e-mail addresses redacted) before they are stored
or logged.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from payretry.errors import InvalidInput

MAX_ID_LENGTH = 255
MAX_CODE_LENGTH = 64
MAX_MESSAGE_LENGTH = 500
MAX_METADATA_KEYS = 20
MAX_METADATA_KEY_LENGTH = 40
MAX_METADATA_VALUE_LENGTH = 500

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_CODE = re.compile(r"^[a-z0-9_]+$")
_METADATA_KEY = re.compile(r"^[A-Za-z0-9_.\-]+$")
_EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}")
# A run of digit groups separated by single spaces or dashes; a card is 13 to 19 of its digits.
_GROUPED_DIGITS = re.compile(r"(?<![0-9])[0-9]+(?:[ \-][0-9]+)*(?![0-9])")
# What every card needs: 13 digits in a row, a single space or dash allowed between them.
# Most text has none, and is passed without the group-by-group look.
_THIRTEEN_DIGITS = re.compile(r"[0-9](?:[ \-]?[0-9]){12}")
# For redaction be broader: any run of 12+ digits with separators.
_DIGIT_RUN = re.compile(r"(?<![\d])\d(?:[ \-]?\d){11,}(?![\d])")


def luhn_valid(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if index % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def looks_like_card(text: str) -> bool:
    """True when `text` holds a Luhn-valid run of 13 to 19 digits (spaces or dashes allowed).

    Every span of whole groups is checked, so a card beside other digits ("qty 3 4242...",
    "4242... 12/27") is still found, while one long unbroken run (20+ digits) is not a card.
    """
    if not _THIRTEEN_DIGITS.search(text):
        return False
    for match in _GROUPED_DIGITS.finditer(text):
        groups = re.split(r"[ \-]", match.group())
        for start in range(len(groups)):
            digits = ""
            for group in groups[start:]:
                digits += group
                if len(digits) > 19:
                    break
                if len(digits) >= 13 and luhn_valid(digits):
                    return True
    return False


def looks_like_email(text: str) -> bool:
    return "@" in text and _EMAIL.search(text) is not None


def sanitize_message(text: str | None) -> str | None:
    """Redact card-number-like digit runs and e-mail addresses; drop control characters; cap."""
    if text is None:
        return None
    # Control characters first, so that none can split a number until after redaction; e-mails
    # before digit runs, so that digits inside an address do not leave the rest of it behind.
    cleaned = _CONTROL.sub(" ", text)
    cleaned = _EMAIL.sub("[redacted-email]", cleaned)
    cleaned = _DIGIT_RUN.sub("[redacted-number]", cleaned).strip()
    if len(cleaned) > MAX_MESSAGE_LENGTH:
        cleaned = cleaned[: MAX_MESSAGE_LENGTH - 1] + "…"
    return cleaned or None


def _no_pii(value: str, field: str) -> None:
    if looks_like_card(value):
        raise InvalidInput("looks like a card number; payretry stores no card data", field=field)
    if looks_like_email(value):
        raise InvalidInput(
            "looks like an e-mail address; payretry stores no personal data", field=field
        )


def validate_id(value: object, field: str, *, required: bool = True) -> str | None:
    """An opaque identifier: 1 to 255 characters, no control characters, no card or e-mail."""
    if value is None or value == "":
        if required:
            raise InvalidInput("is required", field=field)
        return None
    if not isinstance(value, str):
        raise InvalidInput("must be a string", field=field)
    if value != value.strip() or not value:
        raise InvalidInput("must not start or end with whitespace", field=field)
    if len(value) > MAX_ID_LENGTH:
        raise InvalidInput(f"is longer than {MAX_ID_LENGTH} characters", field=field)
    if _CONTROL.search(value):
        raise InvalidInput("contains control characters", field=field)
    _no_pii(value, field)
    return value


def validate_code(value: object, field: str, *, required: bool = True) -> str | None:
    """An error or decline code: lower-case letters, digits and underscores (Stripe's form)."""
    if value is None or value == "":
        if required:
            raise InvalidInput("is required", field=field)
        return None
    if not isinstance(value, str):
        raise InvalidInput("must be a string", field=field)
    code = value.strip().lower()
    if len(code) > MAX_CODE_LENGTH or not _CODE.match(code):
        raise InvalidInput(
            f"{value!r} is not an error code (lower-case letters, digits, underscores; "
            f"at most {MAX_CODE_LENGTH})",
            field=field,
        )
    return code


def validate_metadata(values: Mapping[str, object]) -> dict[str, str]:
    """At most 20 keys of up to 40 characters ([A-Za-z0-9_.-]), values up to 500 characters."""
    if len(values) > MAX_METADATA_KEYS:
        raise InvalidInput(f"has more than {MAX_METADATA_KEYS} keys", field="metadata")
    clean: dict[str, str] = {}
    for key, raw in values.items():
        if not isinstance(key, str) or not _METADATA_KEY.match(key):
            raise InvalidInput(
                f"key {key!r} must be letters, digits, '_', '.' or '-'", field="metadata"
            )
        if len(key) > MAX_METADATA_KEY_LENGTH:
            raise InvalidInput(
                f"key {key!r} is longer than {MAX_METADATA_KEY_LENGTH} characters",
                field="metadata",
            )
        if isinstance(raw, bool) or not isinstance(raw, str | int | float):
            raise InvalidInput(f"value of {key!r} must be a string", field="metadata")
        value = str(raw)
        if len(value) > MAX_METADATA_VALUE_LENGTH:
            raise InvalidInput(
                f"value of {key!r} is longer than {MAX_METADATA_VALUE_LENGTH} characters",
                field="metadata",
            )
        if _CONTROL.search(value):
            raise InvalidInput(f"value of {key!r} contains control characters", field="metadata")
        _no_pii(value, f"metadata.{key}")
        clean[key] = value
    return clean


def parse_metadata_pairs(pairs: list[str]) -> dict[str, str]:
    """`KEY=VALUE` strings from the command line."""
    values: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InvalidInput(f"{pair!r} is not KEY=VALUE", field="metadata")
        if key in values:
            raise InvalidInput(f"key {key!r} given twice", field="metadata")
        values[key] = value
    return values
