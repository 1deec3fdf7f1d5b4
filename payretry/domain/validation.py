"""Input validation and redaction. payretry stores no card data and no PII.

One detector serves every text payretry stores or prints:

- card numbers: a run of digits (any script's decimal digits, superscripts, fullwidth ...)
  whose groups are joined by separators (spaces of every kind, line breaks and control
  characters, dots, dashes, slashes, underscores, zero-width and other invisible characters,
  combining marks) holds a Luhn-valid span of 13 to 19 digits made of whole groups;
- e-mail addresses: letters and digits of any script, `.` and the other characters RFC 5322
  allows in a local part, an `@` (or a fullwidth one), and a domain of at least two labels whose
  last has two or more characters including a letter (`bob@bücher.de`, `o'neil@example.com`).

Identifiers, codes and metadata that look like either are refused; error messages are stored,
and log and error lines printed, with every digit run of 12 or more digits and every address
redacted. Everything here runs in time linear in the length of the text.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterator, Mapping
from itertools import accumulate, repeat

from payretry.errors import InvalidInput

MAX_ID_LENGTH = 255
MAX_CODE_LENGTH = 64
MAX_MESSAGE_LENGTH = 500  # stored: a longer message is shortened, ending with "…"
MAX_MESSAGE_INPUT = 2000  # accepted from the user: a longer message is refused
MAX_METADATA_KEYS = 20
MAX_METADATA_KEY_LENGTH = 40
MAX_METADATA_VALUE_LENGTH = 500
MAX_SHOWN = 40  # an error quotes a rejected value only when it is this short and harmless
REDACT_DIGITS = 12  # a digit run this long is redacted from messages, whatever its checksum

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_CODE = re.compile(r"[a-z0-9_]+")
_METADATA_KEY = re.compile(r"[A-Za-z0-9_.\-]+")
_EXTRA_SEPARATORS = frozenset(
    "./\\"  # ASCII dot and slashes; "-", "_" and every space are found by category
    "\u00b7\u2022\u2024\u2027\u2219\u22c5\u30fb\uff65"  # middle dots, bullets
    "\u3002\uff0e\uff61"  # ideographic and fullwidth full stops
    "\u2044\u2215\u29f8\uff0f\uff3c"  # fraction, division, big and fullwidth slashes
    "\u2212\u2043\u2796\ufe63\uff0d"  # minus sign, hyphen bullet, heavy minus, small minus
)
_MAIL_AT = frozenset("@\uff20\ufe6b")
_MAIL_DOT = frozenset(".\u3002\uff0e\uff61")
_MAIL_LOCAL_ONLY = frozenset("!#$%&'*+/=?^`{|}~")
_TABLE_LIMIT = 1 << 16  # characters remembered per table; beyond, each is classified anew


class _LazyTable(dict[int, "str | None"]):
    """A str.translate table computed per character on first sight (so importing costs
    nothing) and remembered, up to a bound, for the next texts."""

    def __init__(self, classify: Callable[[str], str | None]) -> None:
        super().__init__()
        self._classify = classify
        for code in range(128):
            self[code] = classify(chr(code))

    def __missing__(self, code: int) -> str | None:
        value = self._classify(chr(code))
        if len(self) < _TABLE_LIMIT:
            self[code] = value
        return value


def _is_separator(char: str) -> bool:
    category = unicodedata.category(char)
    # Z*: spaces, line and paragraph separators; C*: control, format (zero-width, direction
    # marks, soft hyphen, BOM), surrogate, private use, unassigned; M*: combining marks;
    # Pd: dashes; Pc: underscores and other connectors.
    return category[0] in "ZCM" or category in ("Pd", "Pc") or char in _EXTRA_SEPARATORS


def _fold_char(char: str) -> str:
    """Every digit as its ASCII digit, every separator as a space, anything else as is."""
    digit = unicodedata.digit(char, None)
    if digit is not None:
        return "0123456789"[digit]
    return " " if _is_separator(char) else char


def _clean_char(char: str) -> str | None:
    """Format characters (zero-width, direction marks) dropped; lone surrogates replaced."""
    category = unicodedata.category(char)
    if category == "Cf":
        return None
    if category == "Cs":
        return "\ufffd"
    return char


def _mail_char(char: str) -> str:
    """The class of a character in an address: a letter, 9 digit, _ . - @, l local-only."""
    if char in _MAIL_AT:
        return "@"
    if char in _MAIL_DOT:
        return "."
    if char in "-_":
        return char
    if char in _MAIL_LOCAL_ONLY:
        return "l"
    if char.isdecimal():
        return "9"
    if char.isalnum() or unicodedata.category(char)[0] == "M":
        return "a"
    return " "


_FOLD = _LazyTable(_fold_char)
_CLEAN = _LazyTable(_clean_char)
_MAIL = _LazyTable(_mail_char)
# ASCII text (the usual case) takes plain tables: str.translate's fast path.
_FOLD_ASCII = {code: _fold_char(chr(code)) for code in range(128)}
_MAIL_ASCII = {code: _mail_char(chr(code)) for code in range(128)}


def _fold(text: str) -> str:
    return text.translate(_FOLD_ASCII if text.isascii() else _FOLD)


def _clean(text: str) -> str:
    return text if text.isascii() else text.translate(_CLEAN)


# A run of digits and separators starting with a digit, at least 12 characters long (a run
# of 12 digits is): shorter ones are passed over by the regular expression itself.
_RUN = re.compile(r"[0-9][0-9 ]{11,}")
# An address, on the text's character classes: a whole run of local-part characters (never a
# suffix of one: the look-behind keeps the search linear) holding a letter, digit or symbol,
# an @, then labels and dots: at least two labels, the last of two or more characters with a
# letter. Backtracking only gives back whole labels, each looked at once more.
# An address's domain may run straight into another address's local part ("a@b.cc=@d.ee"):
# such a chain is one span, else redacting the first would leave the second whole.
_DOMAIN = r"(?:[a9_\-]++\.)+(?=[9_\-]*+a)[a9_\-]{2,}+"
_ADDRESS = re.compile(
    rf"(?<![a9_l.\-])[.\-]*+[a9_l][a9_l.\-]*+@{_DOMAIN}(?:[a9_l.\-]*+@{_DOMAIN})*+"
)
_LUHN_PLAIN = bytes.maketrans(b"0123456789", bytes(range(10)))
_LUHN_DOUBLE = bytes.maketrans(b"0123456789", bytes([0, 2, 4, 6, 8, 1, 3, 5, 7, 9]))
_ZEROS = str.maketrans("0123456789", "0000000000")
_RESIDUE_CHARS = bytes.maketrans(bytes(range(10)), b"0123456789")
_ONLY = [str.maketrans("0123456789", "".join("01"[d == r] for d in range(10))) for r in range(10)]


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


def _digit_runs(text: str, digits: int) -> Iterator[tuple[int, int, str]]:
    """(start, end, run) of each run of at least `digits` digits joined by separators; the run
    is folded: ASCII digits, a space for each separator."""
    for match in _RUN.finditer(_fold(text)):
        run = match.group().rstrip(" ")
        if len(run) - run.count(" ") >= digits:
            yield match.start(), match.start() + len(run), run


def _luhn_span(groups: list[str]) -> bool:
    """Whether consecutive whole groups hold 13 to 19 digits that pass the Luhn check.

    Boundaries between digits are numbered 0..n; a span [s, e) passes when the prefix sums
    of the Luhn weights doubling the places of e's parity (a span's last digit is never
    doubled) agree modulo 10 at s and e. Both ways of looking are linear in the run: span by
    span, at most 7 spans per group end, for groups of 3 digits or more on average; as bit
    sets (below) for a run of many tiny groups, where span by span would be slow."""
    if len(groups) == 1:
        return 13 <= len(groups[0]) <= 19 and luhn_valid(groups[0])
    digits = "".join(groups).encode("ascii")
    if len(digits) < 3 * len(groups):
        return _luhn_span_bits(groups, digits)
    plain, double = digits.translate(_LUHN_PLAIN), digits.translate(_LUHN_DOUBLE)
    even, odd = bytearray(plain), bytearray(plain)
    even[0::2], odd[1::2] = double[0::2], double[1::2]
    sums = (list(accumulate(even, initial=0)), list(accumulate(odd, initial=0)))
    bounds = list(accumulate(map(len, groups), initial=0))  # group i spans bounds[i:i+2]
    first = 0
    for end in bounds[1:]:
        while end - bounds[first] > 19:
            first += 1
        prefix = sums[end % 2]
        total = prefix[end]
        start = first
        while end - bounds[start] >= 13:
            if (total - prefix[bounds[start]]) % 10 == 0:
                return True
            start += 1
    return False


def _luhn_span_bits(groups: list[str], digits: bytes) -> bool:
    """_luhn_span with boundaries as bit sets (big integers, boundary k at bit size-1-k): for
    each parity and residue, the group starts with that residue, shifted by 13 to 19, meet
    the group ends with it. Whole-string and whole-integer operations only."""
    shape = " ".join(groups).translate(_ZEROS)  # "0000 00 0 ...": where the groups are
    size = len(digits) + 1
    starts = int(("1" + shape[1:]).replace(" 0", "1") + "0", 2)
    ends = int("0" + (shape + " ").replace("0 ", "1"), 2)
    plain, double = digits.translate(_LUHN_PLAIN), digits.translate(_LUHN_DOUBLE)
    for parity in (0, 1):
        weights = bytearray(plain)
        weights[parity::2] = double[parity::2]
        residues = bytes(map(int.__mod__, accumulate(weights, initial=0), repeat(10)))
        residues_text = residues.translate(_RESIDUE_CHARS).decode("ascii")
        places = int((("10" if parity == 0 else "01") * (size // 2 + 1))[:size], 2)
        ends_here = ends & places
        for residue in range(10):
            same = int(residues_text.translate(_ONLY[residue]), 2)
            begin, finish = same & starts, same & ends_here
            if not begin or not finish:
                continue
            reach = 0
            for length in range(13, 20):
                reach |= begin >> length
            if reach & finish:
                return True
    return False


_CARD_DIGITS = 13  # the fewest digits a card number has
_ASCII_DIGITS = b"0123456789"


def _too_few_digits(text: str, digits: int) -> bool:
    """Whether `text` surely holds fewer than `digits` digits, so no run of that many: it is
    shorter than that, or ASCII with fewer (the fold keeps an ASCII text's digits and makes
    nothing else a digit). Most stored texts (ids, codes, amounts, messages) are such, and
    this costs a fraction of the scan it spares."""
    if len(text) < digits:  # the fold maps one character to one: any text this short
        return True
    return text.isascii() and (
        len(text) - len(text.encode().translate(None, _ASCII_DIGITS)) < digits
    )


def looks_like_card(text: str) -> bool:
    """True when `text` holds a Luhn-valid run of 13 to 19 digits (any separators between).

    Every span of whole groups is checked, so a card beside other digits ("qty 3 4242...",
    "4242... 12/27") is still found, while one long unbroken run (20+ digits) is not a card.
    """
    if _too_few_digits(text, _CARD_DIGITS):
        return False
    return any(_luhn_span(run.split()) for _, _, run in _digit_runs(text, _CARD_DIGITS))


def _addresses(text: str) -> Iterator[tuple[int, int]]:
    """(start, end) of each e-mail address in `text` (format characters already removed)."""
    for match in _ADDRESS.finditer(text.translate(_MAIL_ASCII if text.isascii() else _MAIL)):
        yield match.span()


def looks_like_email(text: str) -> bool:
    # "@" is the only at-sign in ASCII; the others are looked for only in other text.
    if "@" not in text and (text.isascii() or not any(at in text for at in _MAIL_AT)):
        return False
    return next(_addresses(_clean(text)), None) is not None


def _replace(text: str, spans: Iterator[tuple[int, int]], token: str) -> str:
    """`text` with each span (in order of start; overlapping spans merged) replaced by token."""
    parts: list[str] = []
    position = 0
    current: tuple[int, int] | None = None
    for start, end in spans:
        if current is not None and start <= current[1]:
            current = (current[0], max(current[1], end))
            continue
        if current is not None:
            parts += [text[position : current[0]], token]
            position = current[1]
        current = (start, end)
    if current is None:
        return text
    parts += [text[position : current[0]], token, text[current[1] :]]
    return "".join(parts)


def _long_runs(text: str) -> Iterator[tuple[int, int]]:
    for start, end, _ in _digit_runs(text, REDACT_DIGITS):
        yield start, end


def redact(text: str) -> str:
    """Every e-mail address and every run of 12 or more digits (separators allowed) replaced;
    format characters dropped, lone surrogates replaced. Line breaks are kept."""
    cleaned = _clean(text)
    if any(at in cleaned for at in _MAIL_AT):
        cleaned = _replace(cleaned, _addresses(cleaned), "[redacted-email]")
    if _too_few_digits(cleaned, REDACT_DIGITS):
        return cleaned
    return _replace(cleaned, _long_runs(cleaned), "[redacted-number]")


def sanitize_message(text: str | None) -> str | None:
    """Redact card-number-like digit runs and e-mail addresses; drop control characters; cap."""
    if text is None:
        return None
    # Control characters become spaces (one line per message); redaction before the cap, so
    # that a number straddling the cap is not cut in half and kept.
    cleaned = redact(_CONTROL.sub(" ", text)).strip()
    if len(cleaned) > MAX_MESSAGE_LENGTH:
        cleaned = cleaned[: MAX_MESSAGE_LENGTH - 1] + "…"
    return cleaned or None


def unsafe_to_show(text: str) -> bool:
    """True when `text` must not be echoed: it holds an address or a run of 12+ digits."""
    return redact(text) != _clean(text)


def shown(value: object, *, limit: int = MAX_SHOWN) -> str:
    """A rejected value as an error may quote it: repr() when it is short and holds nothing
    that looks like card data or an address; otherwise a description that shows none of it."""
    text = value if isinstance(value, str) else repr(value)
    if len(text) > limit:
        return f"a value of {len(text):,} characters"
    if unsafe_to_show(text):
        return "a value that looks like card data or an e-mail address (not shown)"
    return repr(value)


def _no_pii(value: str, field: str, what: str = "") -> None:
    if looks_like_card(value):
        raise InvalidInput(
            f"{what}looks like a card number; payretry stores no card data", field=field
        )
    if looks_like_email(value):
        raise InvalidInput(
            f"{what}looks like an e-mail address; payretry stores no personal data", field=field
        )


def no_card(value: str, field: str) -> None:
    """Refuse a number (an amount, a priority) whose digits look like a card number."""
    if looks_like_card(value):
        raise InvalidInput("looks like a card number; payretry stores no card data", field=field)


def _printable_problem(value: str, *, spaces: bool) -> str | None:
    """Why `value` cannot be stored as one visible line, or None. `spaces`: any kind of space
    is fine (a no-break space in a note); else only the ASCII space (an identifier)."""
    if value.isprintable():
        return None
    if _CONTROL.search(value):
        return "contains control characters"
    if spaces and value.translate(_FOLD_SPACES).isprintable():
        return None
    if any(unicodedata.category(c) == "Cs" for c in value):
        return "is not valid Unicode text (a lone surrogate: bytes that are not UTF-8?)"
    return (
        "contains invisible or non-printing characters (zero-width or direction marks, "
        "unusual spaces, line separators, private-use or unassigned characters)"
    )


_FOLD_SPACES = {
    ord(c): " "
    for c in "\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
    "\u2009\u200a\u202f\u205f\u3000"
}


def validate_id(value: object, field: str, *, required: bool = True) -> str | None:
    """An opaque identifier: 1 to 255 printable characters (ASCII spaces only inside), no
    control, invisible or format characters, nothing that looks like a card or an e-mail."""
    if value is None or value == "":
        if required:
            raise InvalidInput("is required", field=field)
        return None
    if not isinstance(value, str):
        raise InvalidInput("must be a string", field=field)
    if len(value) > MAX_ID_LENGTH:
        raise InvalidInput(f"is longer than {MAX_ID_LENGTH} characters", field=field)
    if value != value.strip():
        raise InvalidInput("must not start or end with whitespace", field=field)
    _no_pii(value, field)  # first: the more important of the two reasons
    problem = _printable_problem(value, spaces=False)
    if problem:
        raise InvalidInput(problem, field=field)
    return value


class _Accepted(dict[str, str]):
    """Values a pure check has accepted, with what it made of them: a bulk file repeats a
    handful of codes and metadata keys, each checked once. Bounded: beyond, checked anew."""

    def remember(self, value: str, result: str) -> str:
        if len(self) < _ACCEPTED_LIMIT:
            self[value] = result
        return result


_ACCEPTED_LIMIT = 4096
_ACCEPTED_CODES = _Accepted()
_ACCEPTED_KEYS = _Accepted()


def validate_code(value: object, field: str, *, required: bool = True) -> str | None:
    """An error or decline code: lower-case letters, digits and underscores (Stripe's form)."""
    if value is None or value == "":
        if required:
            raise InvalidInput("is required", field=field)
        return None
    if isinstance(value, str) and (known := _ACCEPTED_CODES.get(value)) is not None:
        return known
    if not isinstance(value, str):
        raise InvalidInput("must be a string", field=field)
    code = value.strip()
    # ASCII first: "K" (the Kelvin sign) and "ſ" lower-case to ASCII letters.
    if len(code) > MAX_CODE_LENGTH or not code.isascii() or not _CODE.fullmatch(code.lower()):
        raise InvalidInput(
            f"{shown(value)} is not an error code (lower-case letters, digits, underscores; "
            f"at most {MAX_CODE_LENGTH})",
            field=field,
        )
    code = code.lower()
    _no_pii(code, field)
    return _ACCEPTED_CODES.remember(value, code)


def validate_text(value: str, field: str, *, limit: int) -> str:
    """A free text accepted from the user (an error message): at most `limit` characters."""
    if len(value) > limit:
        raise InvalidInput(f"is longer than {limit:,} characters", field=field)
    return value


def validate_metadata(values: Mapping[str, object]) -> dict[str, str]:
    """At most 20 keys of up to 40 characters ([A-Za-z0-9_.-]), values up to 500 characters;
    no key or value that looks like a card number or an e-mail address."""
    if len(values) > MAX_METADATA_KEYS:
        raise InvalidInput(f"has more than {MAX_METADATA_KEYS} keys", field="metadata")
    clean: dict[str, str] = {}
    for key, raw in values.items():
        if key not in _ACCEPTED_KEYS:
            _check_metadata_key(key)
        if isinstance(raw, bool) or not isinstance(raw, str | int | float):
            raise InvalidInput(f"value of {key!r} must be a string", field="metadata")
        value = str(raw)
        if len(value) > MAX_METADATA_VALUE_LENGTH:
            raise InvalidInput(
                f"value of {key!r} is longer than {MAX_METADATA_VALUE_LENGTH} characters",
                field="metadata",
            )
        _no_pii(value, f"metadata.{key}")
        problem = _printable_problem(value, spaces=True)
        if problem:
            raise InvalidInput(f"value of {key!r} {problem}", field="metadata")
        clean[key] = value
    return clean


def _check_metadata_key(key: object) -> None:
    if not isinstance(key, str) or not _METADATA_KEY.fullmatch(key):
        raise InvalidInput(
            f"key {shown(key)} must be letters, digits, '_', '.' or '-'", field="metadata"
        )
    if len(key) > MAX_METADATA_KEY_LENGTH:
        raise InvalidInput(
            f"key {shown(key)} is longer than {MAX_METADATA_KEY_LENGTH} characters",
            field="metadata",
        )
    _no_pii(key, "metadata", "a key ")
    _ACCEPTED_KEYS.remember(key, key)


def parse_metadata_pairs(pairs: list[str]) -> dict[str, str]:
    """`KEY=VALUE` strings from the command line."""
    values: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InvalidInput(f"{shown(pair)} is not KEY=VALUE", field="metadata")
        if key in values:
            raise InvalidInput(f"key {shown(key)} given twice", field="metadata")
        values[key] = value
    return values
