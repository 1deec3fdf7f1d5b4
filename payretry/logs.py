"""Logging on stderr: human lines on a terminal, or one JSON object per line.

Messages, fields and tracebacks pass through the same redaction as stored messages and the
same secret masking as error lines, so a card number, an e-mail address or a password that
slips into a log call (a driver's error echoing a URL, say) is never written.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

from payretry.domain.validation import redact, sanitize_message
from payretry.masking import mask_secrets

FIELDS = ("transaction_id", "attempt", "error_code", "outcome", "next_retry_at", "job_id")


def _line(text: str) -> str:
    """One log line's text: redacted, secrets masked, control characters as spaces, capped."""
    return mask_secrets(sanitize_message(text) or "")


def _field(value: object) -> object:
    return _line(value) if isinstance(value, str) else value


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat().replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "message": _line(record.getMessage()),
        }
        for name in FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                data[name] = _field(value)
        if record.exc_info:  # the whole traceback, its lines kept
            data["exception"] = mask_secrets(redact(self.formatException(record.exc_info)))
        return json.dumps(data)


class HumanFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        extras = " ".join(
            f"{name}={_field(getattr(record, name))}"
            for name in FIELDS
            if getattr(record, name, None) is not None
        )
        text = f"{record.levelname.lower()}: {_line(record.getMessage())}"
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
