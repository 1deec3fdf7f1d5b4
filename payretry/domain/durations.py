"""Durations (`90s`, `5m`, `24h`, `2d`, `1h30m`) and ISO 8601 times, parsed strictly."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from payretry.errors import InvalidInput

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_SECONDS = re.compile(r"^\d+(?:\.\d+)?$")
_WHOLE = re.compile(r"^(?:\d+(?:\.\d+)?(?:ms|s|m|h|d|w))+$")
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
    if isinstance(text, bool):
        raise InvalidInput(f"{text!r} is not a duration", field=field)
    if isinstance(text, int | float):
        if text != text or text < 0:
            raise InvalidInput(f"{text!r} is not a duration", field=field)
        if text > MAX_DURATION.total_seconds():
            raise InvalidInput(f"{text!r} is longer than 10 years", field=field)
        return timedelta(seconds=text)
    raw = text.strip().lower().replace(" ", "")
    try:
        if raw.isascii() and _SECONDS.match(raw):  # not "²", which isdigit() but int() refuses
            value = timedelta(seconds=float(raw))
        elif _WHOLE.match(raw):
            value = timedelta()
            for number, unit in _PART.findall(raw):
                value += float(number) * _UNITS[unit]
        else:
            raise InvalidInput(
                f"{text!r} is not a duration (examples: 30s, 5m, 24h, 1h30m, 2d)", field=field
            )
    except (OverflowError, ValueError):  # beyond timedelta's (or int's) range: > 10 years
        raise InvalidInput(f"{text!r} is longer than 10 years", field=field) from None
    if value > MAX_DURATION:
        raise InvalidInput(f"{text!r} is longer than 10 years", field=field)
    return value


def format_duration(value: timedelta) -> str:
    """The shortest exact form: 0s, 90s -> 1m30s, 24h -> 1d."""
    total = int(value.total_seconds())
    if total == 0:
        return "0s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, total = divmod(total, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def parse_time(text: str, *, field: str = "time") -> datetime:
    """An ISO 8601 time with a UTC offset (`2026-11-22T10:00:00Z`); naive times are refused."""
    raw = text.strip()
    try:
        value = datetime.fromisoformat(raw.replace("z", "Z"))
    except ValueError:
        raise InvalidInput(
            f"{text!r} is not an ISO 8601 time like 2026-11-22T10:00:00Z", field=field
        ) from None
    if value.tzinfo is None:
        raise InvalidInput(
            f"{text!r} has no UTC offset; add Z or +00:00 so the time is unambiguous", field=field
        )
    return value.astimezone(UTC)


def iso(value: datetime | None) -> str | None:
    """ISO 8601 UTC with a Z, or None."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
