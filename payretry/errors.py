"""The exception tree. Each error carries the exit code the CLI maps it to.

Exit codes: 0 done; 2 invalid input or usage; 3 refused by policy or state; 4 not found;
1 anything else (database unreachable, internal error).
"""

from __future__ import annotations


class PayretryError(Exception):
    """payretry failed."""

    exit_code = 1
    kind = "error"

    def __init__(self, message: str | None = None, *, field: str | None = None) -> None:
        self.message = message or (self.__doc__ or "").strip()
        self.field = field
        super().__init__(self.message)

    def __str__(self) -> str:
        if self.field and not self.message.startswith(self.field):
            return f"{self.field}: {self.message}"
        return self.message


class InvalidInput(PayretryError):
    """Invalid input."""

    exit_code = 2
    kind = "invalid_input"


class InvalidRows(InvalidInput):
    """Some rows of the input file are invalid; nothing was written."""

    def __init__(self, problems: list[tuple[int, str]], *, refused_only: bool = False) -> None:
        self.problems = problems
        lines = "; ".join(f"line {n}: {msg}" for n, msg in problems[:20])
        more = f" (and {len(problems) - 20} more)" if len(problems) > 20 else ""
        super().__init__(f"{len(problems)} bad row(s), nothing written: {lines}{more}")
        if refused_only:
            self.exit_code = 3
            self.kind = "refused"


class ConfigError(InvalidInput):
    """Invalid configuration."""

    kind = "config_error"


class Refused(PayretryError):
    """Refused by policy or state."""

    exit_code = 3
    kind = "refused"


class NotFound(PayretryError):
    """Not found."""

    exit_code = 4
    kind = "not_found"


class StoreError(PayretryError):
    """The database could not be used."""

    exit_code = 1
    kind = "store_error"


class ProcessorError(PayretryError):
    """The payment processor could not be used (bad credentials, misconfiguration)."""

    exit_code = 1
    kind = "processor_error"


class QueueError(PayretryError):
    """The message queue (SQS) could not be used."""

    exit_code = 1
    kind = "queue_error"


class Throttled(Refused):
    """Too many retry requests; try again later."""

    kind = "throttled"

    def __init__(self, message: str | None = None, *, retry_after: float, field: str | None = None):
        super().__init__(message, field=field)
        self.retry_after = retry_after


class UsageError(InvalidInput):
    """Invalid usage of the command line (an unknown option, a missing argument)."""

    kind = "usage"

    def __str__(self) -> str:
        return self.message  # the parser's message already names the option


class BadSignature(InvalidInput):
    """The webhook's signature is missing, wrong, stale or made with another secret."""

    kind = "bad_signature"
