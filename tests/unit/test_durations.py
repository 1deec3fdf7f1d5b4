"""Durations (`30s`, `5m`, `1h30m`, ...) and ISO 8601 times, parsed strictly."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from payretry.domain.durations import (
    MAX_DURATION,
    format_duration,
    iso,
    parse_duration,
    parse_time,
)
from payretry.errors import InvalidInput


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", timedelta(seconds=30)),
        ("5m", timedelta(minutes=5)),
        ("24h", timedelta(hours=24)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("2d", timedelta(days=2)),
        ("1w", timedelta(weeks=1)),
        ("250ms", timedelta(milliseconds=250)),
        ("1d2h3m4s", timedelta(days=1, hours=2, minutes=3, seconds=4)),
        ("90", timedelta(seconds=90)),
        ("0.2", timedelta(milliseconds=200)),
        ("1.5h", timedelta(minutes=90)),
        ("0", timedelta(0)),
        ("0s", timedelta(0)),
        (" 5M ", timedelta(minutes=5)),
        ("1h 30m", timedelta(hours=1, minutes=30)),
    ],
)
def test_parse_duration_forms(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


def test_parse_duration_accepts_numbers_as_seconds() -> None:
    assert parse_duration(45) == timedelta(seconds=45)
    assert parse_duration(1.5) == timedelta(seconds=1.5)


@pytest.mark.parametrize(
    "text",
    [
        *["", "   ", "abc", "5x", "m5", "-5m", "1.h", ".5h", "1..5h", "5 minutes", "h"],
        *["1h-30m", "P1D", "²", "5m!", "1e3s", "-0"],
    ],
)
def test_malformed_duration_raises_with_field(text: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_duration(text, field="window")
    assert caught.value.field == "window"
    assert str(caught.value).startswith("window: ")


@pytest.mark.parametrize("value", [-1, -0.5, float("nan"), float("inf"), float("-inf"), True])
def test_bad_numeric_durations_are_refused(value: float) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_duration(value, field="lock_timeout")
    assert caught.value.field == "lock_timeout"


@pytest.mark.parametrize(
    "value",
    [
        "3651d",
        "99999999999999999999",
        "999999999999999d",
        "1" * 5000,
        "1" * 5000 + "s",
        10**9,
        10**20,
        1e300,
    ],
)
def test_durations_longer_than_ten_years_are_refused(value: str | float) -> None:
    with pytest.raises(InvalidInput, match="10 years") as caught:
        parse_duration(value, field="window")
    assert caught.value.field == "window"


def test_ten_years_exactly_is_allowed() -> None:
    assert parse_duration("3650d") == MAX_DURATION
    assert parse_duration(int(MAX_DURATION.total_seconds())) == MAX_DURATION


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (timedelta(0), "0s"),
        (timedelta(seconds=90), "1m30s"),
        (timedelta(hours=24), "1d"),
        (timedelta(hours=1, minutes=30), "1h30m"),
        (timedelta(days=2, seconds=5), "2d5s"),
    ],
)
def test_format_duration(value: timedelta, text: str) -> None:
    assert format_duration(value) == text


@settings(max_examples=200)
@given(seconds=st.integers(min_value=0, max_value=int(MAX_DURATION.total_seconds())))
def test_format_duration_round_trip(seconds: int) -> None:
    value = timedelta(seconds=seconds)
    text = format_duration(value)
    assert parse_duration(text) == value
    # The shortest form: each unit at most once, in descending order.
    assert text == "0s" or all(text.count(unit) <= 1 for unit in "dhms")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-22T10:00:00Z", datetime(2026, 11, 22, 10, 0, tzinfo=UTC)),
        ("2026-11-22T10:00:00z", datetime(2026, 11, 22, 10, 0, tzinfo=UTC)),
        ("2026-11-22T10:00:00+00:00", datetime(2026, 11, 22, 10, 0, tzinfo=UTC)),
        ("2026-11-22T12:30:00+02:00", datetime(2026, 11, 22, 10, 30, tzinfo=UTC)),
        ("2026-11-22T05:00:00-05:00", datetime(2026, 11, 22, 10, 0, tzinfo=UTC)),
        (" 2026-11-22T10:00:00.250Z ", datetime(2026, 11, 22, 10, 0, 0, 250000, tzinfo=UTC)),
    ],
)
def test_parse_time_returns_aware_utc(text: str, expected: datetime) -> None:
    value = parse_time(text)
    assert value == expected
    assert value.tzinfo is UTC
    assert value.utcoffset() == timedelta(0)


@pytest.mark.parametrize("text", ["2026-11-22T10:00:00", "2026-11-22", "2026-11-22 10:00"])
def test_parse_time_requires_an_offset(text: str) -> None:
    with pytest.raises(InvalidInput, match="no UTC offset") as caught:
        parse_time(text, field="expires_at")
    assert caught.value.field == "expires_at"


@pytest.mark.parametrize("text", ["", "tomorrow", "2026-13-01T00:00:00Z", "22/11/2026", "1h"])
def test_parse_time_refuses_malformed(text: str) -> None:
    with pytest.raises(InvalidInput, match="ISO 8601") as caught:
        parse_time(text, field="expires_at")
    assert caught.value.field == "expires_at"


@settings(max_examples=100)
@given(
    moment=st.datetimes(
        min_value=datetime(1971, 1, 2),
        max_value=datetime(9998, 12, 30),
        timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30)), timezone.max]),
    )
)
def test_iso_and_parse_time_round_trip(moment: datetime) -> None:
    text = iso(moment)
    assert text is not None and text.endswith("Z")
    assert parse_time(text) == moment


def test_iso_of_none_is_none() -> None:
    assert iso(None) is None
