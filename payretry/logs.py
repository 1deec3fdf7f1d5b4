"""Logging on stderr: human lines on a terminal, or one JSON object per line.

Messages and fields pass through the same sanitizer as stored messages, so a card number or an
e-mail address that slips into a log call is redacted.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

from payretry.domain.validation import sanitize_message

FIELDS = ("transaction_id", "attempt", "error_code", "outcome", "next_retry_at", "job_id")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat().replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "message": sanitize_message(record.getMessage()),
        }
        for name in FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                data[name] = sanitize_message(value) if isinstance(value, str) else value
        if record.exc_info:
            data["exception"] = sanitize_message(self.formatException(record.exc_info))
        return json.dumps(data)


class HumanFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        extras = " ".join(
            f"{name}={getattr(record, name)}"
            for name in FIELDS
            if getattr(record, name, None) is not None
        )
        text = f"{record.levelname.lower()}: {sanitize_message(record.getMessage())}"
        return f"{text} {extras}".rstrip()


def setup_logging(fmt: str, level: str) -> None:
    logger = logging.getLogger("payretry")
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    handler.setFormatter(JsonFormatter() if use_json else HumanFormatter())
    logger.addHandler(handler)
    logger.setLevel(level.upper())
    logger.propagate = False
