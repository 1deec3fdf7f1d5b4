"""Hostile text for the fuzz suite: card numbers split every way, addresses of every script,
invisible and control characters, lone surrogates, digits of other scripts."""

from __future__ import annotations

from hypothesis import strategies as st

from payretry.domain.validation import luhn_valid

DIGITS = "0123456789"
# Separators a card's groups may be joined by (any run of them).
SEPARATORS = list(
    " .-_/\\\t\n\r\x00\x1b\u00a0\u2009\u202f\u2007\u3000\u200b\u200c\u200d\u2060\ufeff\u00ad"
    "\u2010\u2013\u2014\u2212\uff0d\u00b7\u2022\u3002\uff0e\u2044\uff0f\u0305"
)
# Each script's digits: 0..9 of ASCII, Arabic-Indic, Devanagari, fullwidth, math bold.
SCRIPTS = [0x30, 0x660, 0x966, 0xFF10, 0x1D7CE]
TRICKY = list(
    "\u200e\u202e\u2028\u2029\ue000\U000e0041\u0301\ufffd\u212a\u017f\uff20@'\"=,;:{}[]%+"
)


def luhn_complete(prefix: str) -> str:
    for check in DIGITS:
        if luhn_valid(prefix + check):
            return prefix + check
    raise AssertionError("unreachable")  # pragma: no cover


@st.composite
def cards(draw: st.DrawFn) -> str:
    """A Luhn-valid 13 to 19 digit number, grouped, separated and spelled in some script."""
    number = luhn_complete(draw(st.text(alphabet=DIGITS, min_size=12, max_size=18)))
    zero = draw(st.sampled_from(SCRIPTS))
    spelled = "".join(chr(zero + int(d)) for d in number)
    out, i = [], 0
    while i < len(spelled):
        size = draw(st.integers(1, 6))
        out.append(spelled[i : i + size])
        i += size
    seps = st.text(alphabet=st.sampled_from(SEPARATORS), min_size=0, max_size=3)
    return "".join(group + (draw(seps) if k < len(out) - 1 else "") for k, group in enumerate(out))


@st.composite
def addresses(draw: st.DrawFn) -> str:
    word = st.text(alphabet=st.sampled_from("abcxyzéüß用户012"), min_size=1, max_size=8)
    local = draw(st.lists(word, min_size=1, max_size=3).map(".".join))
    local += draw(st.sampled_from(["", "+tag", "'o", "_x"]))
    labels = draw(st.lists(word, min_size=1, max_size=3))
    tld = draw(st.sampled_from(["de", "com", "io", "рф", "xn--p1ai", "广告"]))
    at = draw(st.sampled_from(["@", "\uff20"]))
    dot = draw(st.sampled_from([".", "\u3002"]))
    return local + at + dot.join([*labels, tld])


def chars() -> st.SearchStrategy[str]:
    return st.one_of(
        st.characters(),
        st.sampled_from(SEPARATORS + TRICKY + list(DIGITS)),
        st.sampled_from(["\ud800", "\udcff"]),  # lone surrogates: bytes that were not UTF-8
    )


def hostile_text(max_size: int = 60) -> st.SearchStrategy[str]:
    """Text with, sometimes, a card or an address somewhere inside."""
    plain = st.text(alphabet=chars(), max_size=max_size)
    return st.one_of(
        plain,
        st.tuples(plain, st.one_of(cards(), addresses()), plain).map("".join),
    )
