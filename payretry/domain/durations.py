"""Durations (`90s`, `5m`, `24h`, `2d`, `1h30m`) and ISO 8601 times, parsed strictly."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from payretry.domain.validation import shown
from payretry.errors import InvalidInput

# ASCII digits only: \d would take "٥" and "５", which float() then reads as 5.
_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d|w)")
_SECONDS = re.compile(r"[0-9]+(?:\.[0-9]+)?")
_WHOLE = re.compile(r"(?:[0-9]+(?:\.[0-9]+)?(?:ms|s|m|h|d|w))+")
_TIME = re.compile(r"[0-9T:.+\-Z ]{10,40}")
_UNITS = {
    "ms": timedelta(milliseconds=1),
    "s": timedelta(seconds=1),
    "m": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "d": timedelta(days=1),
    "w": timedelta(weeks=1),
}
MAX_DURATION = timedelta(days=3650)


def parse_duration(text: str | int | float, *, field: str = "duration") -> timedelta:
    """`30s`, `5m`, `24h`, `1h30m`, `2d`, `200ms`; a bare number (`0.2`) is seconds."""
    if isinstance(text, bool) or not isinstance(text, int | float | str):
        raise InvalidInput(f"{shown(text)} is not a duration", field=field)
    if isinstance(text, int | float):
        if text != text or text < 0:
            raise InvalidInput(f"{shown(text)} is not a duration", field=field)
        if text > MAX_DURATION.total_seconds():
            raise InvalidInput(f"{shown(text)} is longer than 10 years", field=field)
        return timedelta(seconds=text)
    raw = text.strip().lower().replace(" ", "")
    try:
        if _SECONDS.fullmatch(raw):
            value = timedelta(seconds=float(raw))
        elif _WHOLE.fullmatch(raw):
            value = timedelta()
            for number, unit in _PART.findall(raw):
                value += float(number) * _UNITS[unit]
        else:
            raise InvalidInput(
                f"{shown(text)} is not a duration (examples: 30s, 5m, 24h, 1h30m, 2d)",
                field=field,
            )
    except (OverflowError, ValueError):  # beyond timedelta's (or int's) range: > 10 years
        raise InvalidInput(f"{shown(text)} is longer than 10 years", field=field) from None
    if value > MAX_DURATION:
        raise InvalidInput(f"{shown(text)} is longer than 10 years", field=field)
    return value


def format_duration(value: timedelta) -> str:
    """The shortest form to the second: 0s, 90s -> 1m30s, 24h -> 1d; under a second, in
    milliseconds (200ms)."""
    total = int(value.total_seconds())
    if total == 0:
        millis = int(value.total_seconds() * 1000)
        return f"{millis}ms" if millis > 0 else "0s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, total = divmod(total, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def parse_time(text: str, *, field: str = "time") -> datetime:
    """An ISO 8601 time with a UTC offset (`2026-11-22T10:00:00Z`); naive times are refused,
    and so is a time that is no instant in UTC (0001-01-01T00:00:00+14:00 is before year 1)."""
    raw = text.strip().replace("z", "Z") if isinstance(text, str) else ""
    try:
        if not _TIME.fullmatch(raw):  # ASCII digits only, and a length a time can have
            raise ValueError(raw)
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise InvalidInput(
            f"{shown(text)} is not an ISO 8601 time like 2026-11-22T10:00:00Z", field=field
        ) from None
    if value.tzinfo is None:
        raise InvalidInput(
            f"{shown(text)} has no UTC offset; add Z or +00:00 so the time is unambiguous",
            field=field,
        )
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise InvalidInput(
            f"{shown(text)} is outside the years 1 to 9999 once in UTC", field=field
        ) from None


def iso(value: datetime | None) -> str | None:
    """ISO 8601 UTC with a Z, or None."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
