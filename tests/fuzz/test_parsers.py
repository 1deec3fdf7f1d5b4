"""Properties of the parsers: money, durations, times and every setting either give a value
within its bounds or raise the documented error; never anything else."""

from __future__ import annotations

from datetime import UTC, timedelta

from hypothesis import given
from hypothesis import strategies as st

from payretry.config import KEYS, Key, load_settings
from payretry.domain.durations import MAX_DURATION, format_duration, parse_duration, parse_time
from payretry.domain.money import MAX_MINOR, Money
from payretry.domain.validation import looks_like_card
from payretry.errors import ConfigError, InvalidInput
from tests.fuzz.conftest import FUZZ
from tests.fuzz.strategies import chars, hostile_text

_NUMERIC = st.text(
    alphabet=st.sampled_from("0123456789.-+_ e,\u0661\uff15\u00b2smhdw/"), max_size=25
)
_CURRENCIES = st.one_of(
    st.sampled_from(["USD", "usd", "JPY", "BHD", "XAU", "XYZ", "u\u017fd", " EUR ", "US"]),
    st.text(alphabet=chars(), max_size=5),
)


@FUZZ
@given(amount=st.one_of(_NUMERIC, hostile_text(30)), currency=_CURRENCIES)
def test_money_is_parsed_exactly_or_refused(amount: str, currency: str) -> None:
    try:
        money = Money.parse(amount, currency)
    except InvalidInput as exc:
        assert exc.field in ("amount", "currency")
        assert not looks_like_card(str(exc))
        return
    assert 0 < money.amount_minor <= MAX_MINOR
    assert not looks_like_card(str(money.amount_minor))
    assert Money.parse(money.major(), money.currency) == money


@FUZZ
@given(text=st.one_of(_NUMERIC, hostile_text(30), st.integers(), st.floats()))
def test_durations_are_within_ten_years_or_refused(text: str | int | float) -> None:
    try:
        value = parse_duration(text, field="window")
    except InvalidInput as exc:
        assert exc.field == "window"
        return
    assert timedelta(0) <= value <= MAX_DURATION
    whole = timedelta(seconds=int(value.total_seconds()))
    if whole >= timedelta(seconds=1):
        assert parse_duration(format_duration(whole)) == whole


_TIMES = st.one_of(
    st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()),
    st.builds(
        lambda year, offset: f"{year:04d}-01-01T00:00:00{offset}",
        st.sampled_from([1, 2, 1970, 9999]),
        st.sampled_from(["Z", "+14:00", "-14:00", "+23:59", ""]),
    ),
    hostile_text(30),
)


@FUZZ
@given(text=_TIMES)
def test_times_are_aware_utc_or_refused(text: str) -> None:
    try:
        value = parse_time(text, field="expires_at")
    except InvalidInput as exc:
        assert exc.field == "expires_at"
        return
    assert value.tzinfo is UTC


@FUZZ
@given(key=st.sampled_from(KEYS), text=st.one_of(_NUMERIC, hostile_text(40)))
def test_every_setting_parses_or_names_the_variable(key: Key, text: str) -> None:
    try:
        key.parse(text)
    except ValueError:
        pass
    try:
        load_settings(env={key.env: text})
    except ConfigError as exc:
        assert key.env in str(exc)
    try:
        load_settings(env={}, flags={key.dotted: text})
    except ConfigError:
        raise AssertionError("a flag's error is invalid input naming the flag") from None
    except InvalidInput as exc:
        assert exc.field and exc.field.startswith("--")
