"""The one clock seam: everything that needs "now" asks here, or has it passed in."""

from datetime import UTC, datetime


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)
